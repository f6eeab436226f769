//! Temporary credentials: an access key, its secret and security token, and when they expire.
//! IAM's token exchange, CCE Pod Identity and the ECS metadata service all answer with them, in
//! the shapes Huawei's SDKs accept; [`parse_credential_answer`] reads every one of those shapes
//! and refuses anything it cannot use with a message that says what was wrong (never a value).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::bounded;
use super::credentials::Credentials;

/// Renew temporary credentials when less than this is left before they expire, as Huawei's SDKs
/// do (`_DEFAULT_EXPIRATION_THRESHOLD_SECONDS`).
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(40 * 60);

/// Longest access key id accepted from a credential answer.
const MAX_ACCESS_KEY_CHARS: usize = 128;
/// Longest secret key accepted.
const MAX_SECRET_KEY_CHARS: usize = 512;
/// Longest security token accepted (Huawei's are a few kilobytes).
const MAX_SECURITY_TOKEN_CHARS: usize = 64 * 1024;

/// Temporary credentials and their expiry.
#[derive(Clone, Debug)]
pub struct TemporaryCredentials {
    /// The keys, security token included.
    pub credentials: Credentials,
    /// When the service stops accepting them.
    pub expires_at: Timestamp,
}

impl TemporaryCredentials {
    /// When to get new ones, for credentials obtained at `obtained_at`: [`RENEW_BEFORE_EXPIRY`]
    /// before they expire, or, for short-lived credentials, once three quarters of their lifetime
    /// has passed, so that no poll ever signs with credentials about to expire and short
    /// lifetimes are still used for most of their life rather than renewed on every use.
    pub fn renew_at(&self, obtained_at: Timestamp) -> Timestamp {
        let lifetime = self
            .expires_at
            .duration_since(obtained_at)
            .unsigned_abs()
            .min(Duration::from_secs(u64::from(u32::MAX)));
        let margin = RENEW_BEFORE_EXPIRY.min(lifetime / 4);
        let margin = jiff::SignedDuration::try_from(margin).unwrap_or(jiff::SignedDuration::ZERO);
        self.expires_at
            .checked_sub(margin)
            .unwrap_or(self.expires_at)
    }
}

/// Reads a credential answer in any of the shapes Huawei's SDKs accept: the object itself or
/// under `credential` / `credentials`; `access` / `accessKeyId` / `access_key_id`, `secret` /
/// `secretAccessKey` / `secret_access_key`, `securitytoken` / `securityToken` /
/// `security_token`, `expires_at` / `expiration` (RFC 3339). Credentials that are already
/// expired at `now` are refused: signing with them could only fail.
pub fn parse_credential_answer(
    body: &[u8],
    now: Timestamp,
) -> Result<TemporaryCredentials, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON ({})",
            bounded::cut(&e.to_string(), bounded::QUOTE)
        )
    })?;
    let Value::Object(root) = value else {
        return Err("the answer is not a JSON object".to_owned());
    };
    let fields = match root.get("credential").or_else(|| root.get("credentials")) {
        Some(Value::Object(inner)) => inner,
        Some(_) => return Err("`credential` is not an object".to_owned()),
        None => &root,
    };
    let text = |names: &[&str], what: &str, max: usize| -> Result<String, String> {
        let found = names.iter().find_map(|name| fields.get(*name));
        match found {
            None | Some(Value::Null) => Err(format!("the answer has no {what}")),
            Some(Value::String(s)) if s.trim().is_empty() => Err(format!("the {what} is empty")),
            Some(Value::String(s)) if s.chars().count() > max => {
                Err(format!("the {what} is longer than {max} characters"))
            }
            Some(Value::String(s)) if !s.trim().bytes().all(|b| b.is_ascii_graphic()) => Err(
                format!("the {what} holds characters that cannot be sent in an HTTP header"),
            ),
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(_) => Err(format!("the {what} is not a string")),
        }
    };
    let access = text(
        &["access", "accessKeyId", "access_key_id"],
        "access key id",
        MAX_ACCESS_KEY_CHARS,
    )?;
    let secret = text(
        &["secret", "secretAccessKey", "secret_access_key"],
        "secret key",
        MAX_SECRET_KEY_CHARS,
    )?;
    let token = text(
        &["securitytoken", "securityToken", "security_token"],
        "security token",
        MAX_SECURITY_TOKEN_CHARS,
    )?;
    let expiry = text(&["expires_at", "expiration"], "expiry time", 64)?;
    let expires_at: Timestamp = expiry
        .parse()
        .map_err(|e| format!("the expiry time {expiry:?} is not an RFC 3339 time ({e})"))?;
    if expires_at <= now {
        return Err(format!(
            "the credentials expired at {expires_at}, before they could be used (now {now}): check this machine's clock"
        ));
    }
    Ok(TemporaryCredentials {
        credentials: Credentials::new(access, secret).with_security_token(token),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-30T00:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    #[test]
    fn every_shape_the_sdks_accept_is_read() {
        for body in [
            r#"{"credential":{"access":"AK","secret":"SK","securitytoken":"TOK","expires_at":"2026-11-30T06:00:00.000000Z"}}"#,
            r#"{"credentials":{"accessKeyId":"AK","secretAccessKey":"SK","securityToken":"TOK","expiration":"2026-11-30T06:00:00Z"}}"#,
            r#"{"access_key_id":"AK","secret_access_key":"SK","security_token":"TOK","expires_at":"2026-11-30T06:00:00+00:00"}"#,
        ] {
            let parsed = parse_credential_answer(body.as_bytes(), now()).expect(body);
            assert_eq!(parsed.credentials.key_id(), "AK");
            assert_eq!(parsed.credentials.token(), Some("TOK"));
            assert_eq!(parsed.expires_at, "2026-11-30T06:00:00Z".parse().unwrap());
        }
    }

    #[test]
    fn unusable_answers_say_what_is_wrong_without_values() {
        let cases = [
            ("not json", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"credential":"x"}"#, "not an object"),
            (
                r#"{"credential":{"secret":"SK","securitytoken":"T","expires_at":"2026-11-30T06:00:00Z"}}"#,
                "no access key id",
            ),
            (
                r#"{"credential":{"access":"AK","secret":"","securitytoken":"T","expires_at":"2026-11-30T06:00:00Z"}}"#,
                "secret key is empty",
            ),
            (
                r#"{"credential":{"access":"AK","secret":"SK","expires_at":"2026-11-30T06:00:00Z"}}"#,
                "no security token",
            ),
            (
                r#"{"credential":{"access":"AK","secret":"S\nK","securitytoken":"T","expires_at":"2026-11-30T06:00:00Z"}}"#,
                "cannot be sent",
            ),
            (
                r#"{"credential":{"access":"AK","secret":"SK","securitytoken":"T","expires_at":"tomorrow"}}"#,
                "not an RFC 3339 time",
            ),
            (
                r#"{"credential":{"access":"AK","secret":"SK","securitytoken":"T","expires_at":"2026-11-29T23:00:00Z"}}"#,
                "check this machine's clock",
            ),
            (
                r#"{"credential":{"access":7,"secret":"SK","securitytoken":"T","expires_at":"2026-11-30T06:00:00Z"}}"#,
                "not a string",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_credential_answer(body.as_bytes(), now()).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
            assert!(!error.contains("SK") || body.contains("\"SK\"") && !error.contains("\"SK\""));
        }
    }

    #[test]
    fn renewal_leaves_forty_minutes_or_a_quarter_of_a_short_lifetime() {
        let obtained = now();
        let six_hours = TemporaryCredentials {
            credentials: Credentials::new("AK", "SK").with_security_token("T"),
            expires_at: "2026-11-30T06:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            six_hours.renew_at(obtained),
            "2026-11-30T05:20:00Z".parse::<Timestamp>().unwrap()
        );
        let forty_seconds = TemporaryCredentials {
            expires_at: "2026-11-30T00:00:40Z".parse().unwrap(),
            ..six_hours
        };
        assert_eq!(
            forty_seconds.renew_at(obtained),
            "2026-11-30T00:00:30Z".parse::<Timestamp>().unwrap()
        );
    }
}
