//! The first steps of reading a JSON answer, the same for every API the client parses: a size
//! limit checked before anything is read, the syntax, and an object at the top. Errors are the
//! parser's words about a tenant's bytes, so they are cut to [`bounded::QUOTE`].

use serde_json::{Map, Value};

use super::bounded;

/// The top-level object of `body`, or why there is none: more than `max_bytes` bytes (refused
/// unread), not JSON, truncated JSON, or JSON that is not an object.
pub(crate) fn object_of(body: &[u8], max_bytes: usize) -> Result<Map<String, Value>, String> {
    check_size(body, max_bytes)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| syntax_error(&e, body))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(NOT_AN_OBJECT.to_owned()),
    }
}

/// Why a body that is JSON is not an answer.
pub(crate) const NOT_AN_OBJECT: &str = "the body is JSON but not an object";

/// Refuses, unread, a body of more than `max_bytes` bytes.
pub(crate) fn check_size(body: &[u8], max_bytes: usize) -> Result<(), String> {
    if body.len() > max_bytes {
        return Err(format!(
            "the body is {} bytes, more than the {max_bytes}-byte limit",
            body.len()
        ));
    }
    Ok(())
}

/// What serde_json said about `body`'s syntax: truncated or not JSON.
pub(crate) fn syntax_error(error: &serde_json::Error, body: &[u8]) -> String {
    // serde_json's syntax errors name a position, not the input; cut anyway.
    let e = bounded::cut_owned(error.to_string(), bounded::QUOTE);
    if error.is_eof() {
        format!("the body is truncated JSON ({} bytes): {e}", body.len())
    } else {
        format!("the body is not JSON: {e}")
    }
}
