//! Huawei Cloud access keys, kept out of every `Debug`, `Display` and log line.

use std::fmt;
use std::hash::{Hash, Hasher};

use secrecy::{ExposeSecret, SecretString};

/// An access key pair (AK/SK), with the security token of temporary credentials when there is one.
///
/// The access key id identifies the key and may be shown in part; the secret access key and the
/// security token never are: `Debug` and `Display` print only the first characters of the id.
/// Two `Credentials` are equal, and hash alike, when their access key ids are equal, so the
/// controller can key caches and rate limiters by key.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (AK). Identifies the key; not a secret, but shown only in part.
    pub access_key_id: String,
    /// The secret access key (SK). Signs requests; never printed.
    pub secret_access_key: SecretString,
    /// The security token of temporary credentials, sent as `X-Security-Token`; never printed.
    pub security_token: Option<SecretString>,
}

impl Credentials {
    /// Permanent credentials: an access key id and its secret.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretString::from(secret_access_key.into()),
            security_token: None,
        }
    }

    /// Adds the security token of temporary credentials.
    #[must_use]
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(SecretString::from(token.into()));
        self
    }

    /// The access key id: what identifies these credentials in caches and rate limiters.
    pub fn key_id(&self) -> &str {
        &self.access_key_id
    }

    /// A one-way fingerprint of the whole key (id, secret and token): two watches may share an
    /// upstream answer only when their fingerprints match, so a Secret with a known access key id
    /// but a wrong secret never receives the answer another Secret's valid key obtained.
    pub fn fingerprint(&self) -> String {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(self.access_key_id.as_bytes());
        context.update(b"\0");
        context.update(self.secret().as_bytes());
        context.update(b"\0");
        context.update(self.token().unwrap_or_default().as_bytes());
        context
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The access key id as it may appear in logs and messages: its first four characters, then `…`.
    pub fn redacted_key_id(&self) -> String {
        redact_key_id(&self.access_key_id)
    }

    pub(crate) fn secret(&self) -> &str {
        self.secret_access_key.expose_secret()
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.security_token.as_ref().map(|t| t.expose_secret())
    }

    /// Replaces every occurrence of the secret key or the security token in `text` with
    /// `[REDACTED]`. Used on anything the server echoes back before it reaches a message.
    pub(crate) fn scrub(&self, text: &str) -> String {
        scrub(text, &[Some(self.secret()), self.token()])
    }
}

/// Replaces every occurrence of each non-empty secret in `text` with `[REDACTED]`.
pub(crate) fn scrub(text: &str, secrets: &[Option<&str>]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().flatten() {
        if !secret.is_empty() && out.contains(secret) {
            out = out.replace(secret, "[REDACTED]");
        }
    }
    out
}

/// Shows at most the first four characters of an access key id (fewer for short ids).
pub(crate) fn redact_key_id(id: &str) -> String {
    let shown = (id.chars().count() / 2).min(4);
    let prefix: String = id.chars().take(shown).collect();
    format!("{prefix}…")
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.redacted_key_id())
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access key {}", self.redacted_key_id())?;
        if self.security_token.is_some() {
            f.write_str(" (temporary)")?;
        }
        Ok(())
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.access_key_id == other.access_key_id
    }
}

impl Eq for Credentials {}

impl Hash for Credentials {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.access_key_id.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SK: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";
    const TOKEN: &str = "gQpzZXlfdG9rZW4tc2VjcmV0";

    #[test]
    fn debug_and_display_hide_secret_and_token() {
        let creds = Credentials::new("QTWAOYTTINDUT2QVKYUC", SK).with_security_token(TOKEN);
        for text in [
            format!("{creds:?}"),
            format!("{creds:#?}"),
            creds.to_string(),
        ] {
            assert!(!text.contains(SK), "{text}");
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("QTWAOYTTINDUT2QVKYUC"), "{text}");
            assert!(text.contains("QTWA"), "{text}");
        }
    }

    #[test]
    fn equality_and_hash_follow_the_access_key_id() {
        use std::collections::HashSet;
        let a = Credentials::new("AK1", "one");
        let b = Credentials::new("AK1", "two");
        let c = Credentials::new("AK2", "one");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let set: HashSet<_> = [a, b, c].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn short_key_ids_are_shown_at_most_half() {
        assert_eq!(redact_key_id("AB"), "A…");
        assert_eq!(redact_key_id(""), "…");
        assert_eq!(redact_key_id("ABCDEFGHIJ"), "ABCD…");
    }

    #[test]
    fn scrub_removes_secret_and_token_from_server_text() {
        let creds = Credentials::new("AK", SK).with_security_token(TOKEN);
        let text = format!("GET|/v2/|x-security-token:{TOKEN}|sk={SK}");
        let scrubbed = creds.scrub(&text);
        assert!(!scrubbed.contains(SK));
        assert!(!scrubbed.contains(TOKEN));
        assert!(scrubbed.contains("x-security-token:[REDACTED]"));
    }
}
