//! The pool-statistics answer and its tolerant, bounded parser.

use serde::Serialize;
use serde_json::Value;

use super::bounded;

/// The largest response body the client reads (1 MiB): IAM's project lists and credential
/// answers (a security token alone may be tens of KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The largest statistics answer the client reads (16 KiB). The answer is about 200 bytes;
/// the limit leaves room for fields ModelArts may add, and bounds what an endpoint that answers
/// with megabytes makes the operator hold per call in flight: with 64 KiB here and for error
/// bodies, each watch of the attack test (`tests/cluster/bounded.rs`) raised the operator's
/// peak memory by about 40 KiB; with 16 KiB, by about 12 KiB.
pub const MAX_STATISTICS_BODY_BYTES: usize = 16 << 10;

/// Resource-pool counts by state, as ModelArts reported them.
///
/// Every count is optional: the published SDK model lacks `deleting`, and a future API may drop
/// or add states. `operation_time` is kept as the API sent it (Go's `time.String()` format,
/// e.g. `2025-03-27 11:48:55.446172146 +0000 UTC`), not reparsed, and cut to
/// [`bounded::OPERATION_TIME`] bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatistics {
    /// Pools being created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creating: Option<i64>,
    /// Pools created and running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    /// Pools that failed to be created in the last three days (ModelArts caps it at 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
    /// Pools waiting, usually yearly/monthly pools not paid yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<i64>,
    /// Pools being deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleting: Option<i64>,
    /// When ModelArts computed the counts, verbatim up to [`bounded::OPERATION_TIME`] bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_time: Option<String>,
}

/// Why a statistics body could not be used. The message says what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl PoolStatistics {
    /// Parses a 200 body: `{"statistics": {"status": {...}}, "operationTime": "..."}`.
    ///
    /// Unknown keys are ignored; a missing `status` object or count is `None`; a count that is
    /// not an integer, a missing `statistics` object, or a body that is not JSON is an error.
    /// An error quotes at most [`bounded::QUOTE`] bytes of the body.
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let object = super::json::object_of(body, MAX_STATISTICS_BODY_BYTES).map_err(ParseError)?;
        let statistics = match object.get("statistics") {
            Some(Value::Object(s)) => s,
            Some(Value::Null) | None => {
                return Err(ParseError(
                    "the body has no `statistics` object: is the endpoint a ModelArts endpoint?"
                        .to_owned(),
                ));
            }
            Some(_) => {
                return Err(ParseError("`statistics` is not an object".to_owned()));
            }
        };
        let empty = serde_json::Map::new();
        let status = match statistics.get("status") {
            Some(Value::Object(s)) => s,
            Some(Value::Null) | None => &empty,
            Some(_) => {
                return Err(ParseError(
                    "`statistics.status` is not an object".to_owned(),
                ));
            }
        };
        let count = |name: &str| -> Result<Option<i64>, ParseError> {
            match status.get(name) {
                None | Some(Value::Null) => Ok(None),
                // A negative count is a wrong answer: the status schema refuses it, so taking
                // it would leave a status that can never be written.
                Some(number @ Value::Number(n)) => {
                    n.as_i64().filter(|c| *c >= 0).map(Some).ok_or_else(|| {
                        ParseError(format!(
                            "`statistics.status.{name}` is {}, not an integer of 0 or more",
                            quote(number)
                        ))
                    })
                }
                Some(other) => Err(ParseError(format!(
                    "`statistics.status.{name}` is {}, not an integer",
                    quote(other)
                ))),
            }
        };
        // An over-long time is cut, not refused: the counts are what the watch is for, and a
        // longer time than Go's format says nothing against them. Refusing would turn a
        // harmless change of format into a watch that never updates; cut, the status still
        // shows when ModelArts computed the counts, and no answer can make it hold more.
        let operation_time = match object.get("operationTime") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(bounded::cut(s, bounded::OPERATION_TIME).into_owned()),
            Some(other) => Some(bounded::cut_owned(
                other.to_string(),
                bounded::OPERATION_TIME,
            )),
        };
        Ok(Self {
            creating: count("creating")?,
            created: count("created")?,
            failed: count("failed")?,
            pending: count("pending")?,
            deleting: count("deleting")?,
            operation_time,
        })
    }
}

/// A JSON value as it would be quoted in a message: its text, cut to [`bounded::QUOTE`] bytes.
fn quote(value: &Value) -> String {
    bounded::cut_owned(value.to_string(), bounded::QUOTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let body = br#"{"statistics":{"status":{"created":9,"creating":0,"deleting":1,"failed":0,"pending":0}},
            "operationTime":"2025-03-27 11:48:55.446172146 +0000 UTC"}"#;
        assert_eq!(
            PoolStatistics::parse(body),
            Ok(PoolStatistics {
                creating: Some(0),
                created: Some(9),
                failed: Some(0),
                pending: Some(0),
                deleting: Some(1),
                operation_time: Some("2025-03-27 11:48:55.446172146 +0000 UTC".into()),
            })
        );
    }

    #[test]
    fn missing_counts_and_unknown_keys_are_tolerated() {
        let body = br#"{"statistics":{"status":{"created":2,"scaling":4},"extra":[1]},"new":{}}"#;
        let stats = PoolStatistics::parse(body);
        assert_eq!(
            stats,
            Ok(PoolStatistics {
                created: Some(2),
                ..PoolStatistics::default()
            })
        );
        assert_eq!(
            PoolStatistics::parse(br#"{"statistics":{}}"#),
            Ok(PoolStatistics::default())
        );
        assert_eq!(
            PoolStatistics::parse(br#"{"statistics":{"status":{"failed":null}}}"#),
            Ok(PoolStatistics::default())
        );
    }

    #[test]
    fn bad_bodies_are_clear_errors() {
        let cases: [(&[u8], &str); 9] = [
            (b"", "truncated"),
            (b"<html>502 Bad Gateway</html>", "not JSON"),
            (br#"{"statistics":{"status":{"created":9"#, "truncated"),
            (b"[1,2]", "not an object"),
            (br#"{"error":"x"}"#, "no `statistics`"),
            (br#"{"statistics":[]}"#, "not an object"),
            (
                br#"{"statistics":{"status":{"created":"9"}}}"#,
                "not an integer",
            ),
            (
                br#"{"statistics":{"status":{"created":1.5}}}"#,
                "not an integer",
            ),
            (
                br#"{"statistics":{"status":{"failed":-1}}}"#,
                "not an integer of 0 or more",
            ),
        ];
        for (body, expected) in cases {
            match PoolStatistics::parse(body) {
                Err(ParseError(msg)) => assert!(msg.contains(expected), "{msg}"),
                Ok(s) => panic!("{:?} parsed as {s:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn oversized_body_is_refused_before_parsing() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let err = PoolStatistics::parse(&body);
        assert!(matches!(err, Err(ParseError(m)) if m.contains("limit")));
    }

    #[test]
    fn a_long_operation_time_is_cut_and_the_counts_kept() {
        let time = format!(
            "2025-03-27 11:48:55.446172146 +0000 UTC{}",
            "é".repeat(6_000)
        );
        let body =
            serde_json::json!({"statistics": {"status": {"created": 9}}, "operationTime": time});
        let stats = PoolStatistics::parse(body.to_string().as_bytes());
        let stats = stats.unwrap_or_default();
        assert_eq!(stats.created, Some(9));
        let kept = stats.operation_time.unwrap_or_default();
        assert!(
            kept.len() <= bounded::OPERATION_TIME,
            "{} bytes",
            kept.len()
        );
        assert!(kept.starts_with("2025-03-27 11:48:55.446172146 +0000 UTC") && kept.ends_with('…'));
        // Not a string: its JSON text, cut as well.
        let body = serde_json::json!({"statistics": {}, "operationTime": [time]});
        let kept = PoolStatistics::parse(body.to_string().as_bytes())
            .unwrap_or_default()
            .operation_time
            .unwrap_or_default();
        assert!(
            kept.len() <= bounded::OPERATION_TIME,
            "{} bytes",
            kept.len()
        );
    }

    #[test]
    fn errors_never_quote_a_whole_value() {
        let long = "x".repeat(10_000);
        let bodies = [
            format!(r#"{{"statistics":{{"status":{{"created":"{long}"}}}}}}"#),
            format!(r#"{{"statistics":{{"status":{{"created":["{long}"]}}}}}}"#),
            format!(
                r#"{{"statistics":{{"status":{{"created":{}1.5}}}}}}"#,
                "9".repeat(300)
            ),
            // Syntax errors: serde_json names a position, never the input.
            format!(r#"{{"statistics":{{"status":{{"created":"{long}\q"}}}}}}"#),
            format!(r#"{{"statistics":"{long}"#),
        ];
        for body in bodies {
            let message = PoolStatistics::parse(body.as_bytes())
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(!message.is_empty(), "parsed");
            assert!(!message.contains("limit"), "refused unread: {message}");
            assert!(
                message.len() <= 100 + bounded::QUOTE,
                "{} bytes: {message}",
                message.len()
            );
        }
    }

    #[test]
    fn serialises_camel_case_without_absent_counts() {
        let stats = PoolStatistics {
            created: Some(9),
            operation_time: Some("t".into()),
            ..PoolStatistics::default()
        };
        let json = serde_json::to_string(&stats).unwrap_or_default();
        assert_eq!(json, r#"{"created":9,"operationTime":"t"}"#);
    }
}
