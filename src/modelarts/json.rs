//! The first steps of reading a JSON answer, the same for every API the client parses: a size
//! limit checked before anything is read, the syntax, and an object at the top. Errors are the
//! parser's words about a tenant's bytes, so they are cut to [`bounded::QUOTE`].

use serde_json::{Map, Value};

use super::bounded;

/// The top-level object of `body`, or why there is none: more than `max_bytes` bytes (refused
/// unread), not JSON, truncated JSON, or JSON that is not an object.
pub(crate) fn object_of(body: &[u8], max_bytes: usize) -> Result<Map<String, Value>, String> {
    if body.len() > max_bytes {
        return Err(format!(
            "the body is {} bytes, more than the {max_bytes}-byte limit",
            body.len()
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's syntax errors name a position, not the input; cut anyway.
        let eof = e.is_eof();
        let e = bounded::cut_owned(e.to_string(), bounded::QUOTE);
        if eof {
            format!("the body is truncated JSON ({} bytes): {e}", body.len())
        } else {
            format!("the body is not JSON: {e}")
        }
    })?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err("the body is JSON but not an object".to_owned()),
    }
}
