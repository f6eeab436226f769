//! Limits on the strings taken from upstream answers, and the one cut that applies them.
//!
//! An endpoint is named by whoever writes the watch, so its answers are a tenant's input: every
//! string the client takes from one is cut here before anything keeps it (a status, the shared
//! answers, an error, a log line), so that no answer can make the operator hold or write more
//! than these limits, whatever its size. Limits are in bytes of UTF-8, so they bound memory;
//! a cut string is also within the same number of characters, which is what the CRD's
//! `maxLength` counts.

use std::borrow::Cow;

/// What ends a cut string, so that a reader sees that it was cut.
pub const MARKER: &str = "…";

/// Longest `operationTime` kept. ModelArts sends Go's `time.String()`, e.g.
/// `2025-03-27 11:48:55.446172146 +0000 UTC` (39 bytes); a zone name or a monotonic-clock
/// suffix (`m=+1234.567890123`) could make it about 60.
pub const OPERATION_TIME: usize = 128;
/// Longest `error_code` kept: Huawei's are like `ModelArts.50015001` or `APIGW.0301`.
pub const ERROR_CODE: usize = 64;
/// Longest `error_msg` kept: the gateway's can hold a whole canonical request.
pub const ERROR_MESSAGE: usize = 512;
/// Longest `X-Request-Id` kept: Huawei's are 32 hex digits.
pub const REQUEST_ID: usize = 128;
/// Longest piece of an answer quoted in a message of ours (a value of the wrong type, a
/// parser's complaint, a redirect's target).
pub const QUOTE: usize = 128;
/// Longest summary of an error: our own words, with the endpoint's host (up to 2,048
/// characters in the spec) and quotes of the answer in them.
pub const SUMMARY: usize = 1024;

/// `text` cut to at most `max_bytes` bytes, on a character boundary, ending with [`MARKER`]
/// when it was cut (the marker counts towards the limit). Borrowed when it fits.
///
/// `max_bytes` must leave room for the marker (at least 3); a smaller one gives the marker
/// alone, or nothing when not even it fits.
pub fn cut(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let Some(room) = max_bytes.checked_sub(MARKER.len()) else {
        return Cow::Borrowed("");
    };
    let mut cut = String::with_capacity(max_bytes);
    cut.push_str(prefix(text, room));
    cut.push_str(MARKER);
    Cow::Owned(cut)
}

/// [`cut`] for an owned string: truncated in place when too long, returned as is otherwise.
pub fn cut_owned(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let Some(room) = max_bytes.checked_sub(MARKER.len()) else {
        return String::new();
    };
    let keep = prefix(&text, room).len();
    text.truncate(keep);
    text.push_str(MARKER);
    // A megabyte answer cut to a hundred bytes should not keep its megabyte of capacity.
    text.shrink_to_fit();
    text
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character boundary.
pub fn prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert!(matches!(
            cut("ModelArts.0104", ERROR_CODE),
            Cow::Borrowed("ModelArts.0104")
        ));
        assert_eq!(cut("", 0), "");
        let exact = "x".repeat(ERROR_CODE);
        assert_eq!(cut(&exact, ERROR_CODE), exact.as_str());
        assert_eq!(cut_owned(exact.clone(), ERROR_CODE), exact);
    }

    #[test]
    fn long_text_is_cut_to_the_limit_with_the_marker() {
        let long = "x".repeat(1_000_000);
        let cut_text = cut(&long, OPERATION_TIME).into_owned();
        assert_eq!(cut_text.len(), OPERATION_TIME);
        assert!(cut_text.ends_with(MARKER));
        assert!(cut_text.starts_with(&"x".repeat(OPERATION_TIME - MARKER.len())));
        let owned = cut_owned(long, OPERATION_TIME);
        assert_eq!(owned, cut_text);
        assert!(
            owned.capacity() < 2 * OPERATION_TIME,
            "{}",
            owned.capacity()
        );
    }

    #[test]
    fn multi_byte_characters_are_never_split() {
        // 1-, 2-, 3- and 4-byte characters, cut at every limit around them.
        let text = "aé€𝄞".repeat(20);
        for max in 0..text.len() + 2 {
            let cut_text = cut(&text, max);
            assert!(cut_text.len() <= max, "{max}: {cut_text:?}");
            assert!(cut_text.chars().count() <= max, "{max}: {cut_text:?}");
            let kept = cut_text.strip_suffix(MARKER).unwrap_or(&cut_text);
            assert!(text.starts_with(kept), "{max}: {cut_text:?}");
            assert_eq!(cut_owned(text.clone(), max), cut_text, "{max}");
            if max >= MARKER.len() && max < text.len() {
                // Nothing more fits: the next character would pass the limit.
                let next = text[kept.len()..].chars().next().map_or(0, char::len_utf8);
                assert!(
                    kept.len() + next + MARKER.len() > max,
                    "{max}: {cut_text:?}"
                );
            }
        }
    }

    #[test]
    fn prefixes_end_on_character_boundaries() {
        assert_eq!(prefix("€uro", 2), "");
        assert_eq!(prefix("€uro", 3), "€");
        assert_eq!(prefix("€uro", 4), "€u");
        assert_eq!(prefix("€uro", 100), "€uro");
    }
}
