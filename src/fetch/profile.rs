//! The profile file of Huawei's SDKs (`~/.huaweicloud/credentials`, or the file
//! `HUAWEICLOUD_SDK_CREDENTIALS_FILE` names): an INI file whose `[basic]` section holds the
//! credentials of regional services.
//!
//! The SDK reads it with Python's `configparser`; this reads it with `rust-ini`, set up to give
//! the same answer for every file the SDK accepts: `=` or `:` between key and value, whitespace
//! around both trimmed, whole-line `#` and `;` comments, no inline comments (`sk = a;b` is `a;b`),
//! values taken literally (no quote or escape processing), key names case-insensitive, section
//! names case-sensitive, and `[DEFAULT]` values inherited by `[basic]`. Where `configparser`
//! would raise (a key or a `[basic]` section given twice), this refuses the file too, naming
//! the key, never a value.

use std::collections::BTreeMap;

use ini::{Ini, ParseOption};

/// The section the SDK's `BasicCredentials` (regional services such as ModelArts) read.
pub const BASIC_SECTION: &str = "basic";
/// The section whose values every other section inherits, as in `configparser`.
const DEFAULT_SECTION: &str = "DEFAULT";

/// The access key id.
pub const AK: &str = "ak";
/// The secret access key.
pub const SK: &str = "sk";
/// The security token of temporary keys.
pub const SECURITY_TOKEN: &str = "security_token";
/// The project id.
pub const PROJECT_ID: &str = "project_id";
/// The IAM endpoint.
pub const IAM_ENDPOINT: &str = "iam_endpoint";
/// The IAM identity provider's id, for federation.
pub const IDP_ID: &str = "idp_id";
/// The file holding the identity token, for federation.
pub const ID_TOKEN_FILE: &str = "id_token_file";

/// The `[basic]` section: its keys lowercased, `[DEFAULT]`'s keys included.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BasicSection {
    values: BTreeMap<String, String>,
}

impl BasicSection {
    /// The value of `key` (lowercase), or `None` when it is absent or empty: the SDK tests
    /// values for truth, so `ak =` counts as not set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Why a profile file cannot be read. Messages name lines and keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Not INI.
    #[error("it is not an INI file (line {line}, column {column}: {message})")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected (it never quotes the file's text).
        message: String,
    },
    /// A section given twice (`configparser` refuses it).
    #[error("it has more than one [{0}] section: merge them")]
    DuplicateSection(String),
    /// A key given twice in a section (`configparser` refuses it).
    #[error("[{section}] sets {key} more than once: keep one")]
    DuplicateKey {
        /// The section.
        section: String,
        /// The key, lowercased.
        key: String,
    },
}

/// Parses a profile file's text and returns its `[basic]` section, or `None` when it has none.
pub fn parse_basic(text: &str) -> Result<Option<BasicSection>, ProfileError> {
    // Python's utf-8 codec keeps a byte-order mark; editors on Windows write one. Dropping it
    // accepts files the SDK would choke on, never refuses one it accepts.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: false,
        enabled_preserve_key_leading_whitespace: false,
    };
    let ini = Ini::load_from_str_opt(text, options).map_err(|e| ProfileError::Syntax {
        line: e.line,
        column: e.col,
        message: e.msg.into_owned(),
    })?;
    let defaults = section(&ini, DEFAULT_SECTION)?.unwrap_or_default();
    let Some(basic) = section(&ini, BASIC_SECTION)? else {
        return Ok(None);
    };
    let mut values = defaults;
    values.extend(basic);
    Ok(Some(BasicSection { values }))
}

/// One section's keys (lowercased) and values, or `None` when the file has no such section.
fn section(ini: &Ini, name: &str) -> Result<Option<BTreeMap<String, String>>, ProfileError> {
    let mut sections = ini.section_all(Some(name));
    let Some(properties) = sections.next() else {
        return Ok(None);
    };
    if sections.next().is_some() {
        return Err(ProfileError::DuplicateSection(name.to_owned()));
    }
    let mut values = BTreeMap::new();
    for (key, value) in properties.iter() {
        let key = key.to_lowercase();
        if values.insert(key.clone(), value.to_owned()).is_some() {
            return Err(ProfileError::DuplicateKey {
                section: name.to_owned(),
                key,
            });
        }
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> BasicSection {
        match parse_basic(text) {
            Ok(Some(section)) => section,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn keys_and_values_are_read_as_configparser_reads_them() {
        let section = basic(
            "# a comment\n; another\n[basic]\nak = AKEXAMPLE\nSK:secret;with#marks\n\
             security_token=  tok==  \nproject_id = \"quoted\"\niam_endpoint = https://iam.example\\path\n\
             idp_id=\nid_token_file = /var/run/token\n\n[global]\nak = OTHER\n",
        );
        assert_eq!(section.get(AK), Some("AKEXAMPLE"));
        assert_eq!(
            section.get(SK),
            Some("secret;with#marks"),
            "no inline comments"
        );
        assert_eq!(section.get(SECURITY_TOKEN), Some("tok=="));
        assert_eq!(
            section.get(PROJECT_ID),
            Some("\"quoted\""),
            "quotes are literal"
        );
        assert_eq!(
            section.get(IAM_ENDPOINT),
            Some("https://iam.example\\path"),
            "backslashes are literal"
        );
        assert_eq!(section.get(IDP_ID), None, "empty counts as not set");
        assert_eq!(section.get(ID_TOKEN_FILE), Some("/var/run/token"));
    }

    #[test]
    fn a_file_without_a_basic_section_has_none() {
        assert_eq!(parse_basic(""), Ok(None));
        assert_eq!(parse_basic("[global]\nak = A\nsk = S\n"), Ok(None));
        // Section names are case-sensitive in configparser.
        assert_eq!(parse_basic("[BASIC]\nak = A\nsk = S\n"), Ok(None));
    }

    #[test]
    fn default_values_are_inherited_and_overridden() {
        let section = basic("[DEFAULT]\nproject_id = p0\nak = fromdefault\n[basic]\nak = A\n");
        assert_eq!(section.get(AK), Some("A"));
        assert_eq!(section.get(PROJECT_ID), Some("p0"));
        // DEFAULT alone does not make a [basic] section.
        assert_eq!(parse_basic("[DEFAULT]\nak = A\nsk = S\n"), Ok(None));
    }

    #[test]
    fn crlf_and_a_byte_order_mark_are_accepted() {
        let section = basic("\u{feff}[basic]\r\nak = A\r\nsk = S\r\n");
        assert_eq!((section.get(AK), section.get(SK)), (Some("A"), Some("S")));
    }

    #[test]
    fn duplicates_are_refused_naming_the_key_not_the_value() {
        let error = parse_basic("[basic]\nak = A\nAK = secret-value\n").unwrap_err();
        assert_eq!(
            error,
            ProfileError::DuplicateKey {
                section: "basic".to_owned(),
                key: "ak".to_owned()
            }
        );
        assert!(!error.to_string().contains("secret-value"), "{error}");
        assert_eq!(
            parse_basic("[basic]\nak = A\n[basic]\nsk = S\n"),
            Err(ProfileError::DuplicateSection("basic".to_owned()))
        );
    }

    #[test]
    fn syntax_errors_give_the_place_without_the_text() {
        let error = parse_basic("[basic]\nak = A\nsecret-value-without-equals").unwrap_err();
        assert!(matches!(error, ProfileError::Syntax { .. }), "{error:?}");
        assert!(!error.to_string().contains("secret-value"), "{error}");
    }
}
