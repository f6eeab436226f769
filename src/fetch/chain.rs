//! Which credential source `poolwatch fetch` uses, decided from the environment and files alone
//! (no network), in the order of Huawei's SDKs (huaweicloudsdkcore's `CredentialProviderChain`):
//!
//! 1. the environment: `HUAWEICLOUD_SDK_IDP_ID` + `HUAWEICLOUD_SDK_ID_TOKEN_FILE` (federation),
//!    else `HUAWEICLOUD_SDK_AK` + `HUAWEICLOUD_SDK_SK` (+ `HUAWEICLOUD_SDK_SECURITY_TOKEN`);
//! 2. the profile file's `[basic]` section, the same two ways;
//! 3. CCE Pod Identity, when `HC_CONTAINER_CREDENTIALS_FULL_URI` and
//!    `HC_CONTAINER_AUTHORIZATION_TOKEN_FILE` are both set;
//! 4. the ECS metadata service.
//!
//! Where this deviates from the SDK, and why:
//! - Pod Identity comes before the metadata service (the SDK asks the metadata service first):
//!   inside a CCE pod with Pod Identity the SDK waits for the metadata service's timeout, or
//!   silently uses the node's agency when the node has one, which is not the identity the pod
//!   was given.
//! - A source that is half configured (an access key without its secret, an identity provider
//!   without a token file, one Pod Identity variable of two, an explicitly named profile file
//!   that does not exist) is an error, not skipped: the SDK moves on to the next source and ends
//!   up at the metadata service, hiding the typo behind a timeout.
//! - The SDK's first source, `HUAWEICLOUD_OIDC_*` (STS AssumeAgencyWithOIDC), is not supported;
//!   setting it draws a warning.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::modelarts::keyless::ServiceUrl;
use crate::modelarts::{Credentials, Endpoint};

use super::UsageError;
use super::profile::{self, BasicSection};

/// The access key id variable, as Huawei's SDKs name it.
pub const ENV_ACCESS_KEY: &str = "HUAWEICLOUD_SDK_AK";
/// The secret access key variable.
pub const ENV_SECRET_KEY: &str = "HUAWEICLOUD_SDK_SK";
/// The security token variable (temporary credentials).
pub const ENV_SECURITY_TOKEN: &str = "HUAWEICLOUD_SDK_SECURITY_TOKEN";
/// The project id variable.
pub const ENV_PROJECT_ID: &str = "HUAWEICLOUD_SDK_PROJECT_ID";
/// The IAM identity provider id variable (federation).
pub const ENV_IDP_ID: &str = "HUAWEICLOUD_SDK_IDP_ID";
/// The identity token file variable (federation).
pub const ENV_ID_TOKEN_FILE: &str = "HUAWEICLOUD_SDK_ID_TOKEN_FILE";
/// The IAM endpoint variable.
pub const ENV_IAM_ENDPOINT: &str = "HUAWEICLOUD_SDK_IAM_ENDPOINT";
/// The profile file variable.
pub const ENV_CREDENTIALS_FILE: &str = "HUAWEICLOUD_SDK_CREDENTIALS_FILE";
/// The CCE Pod Identity credential URI variable.
pub const ENV_POD_IDENTITY_URI: &str = "HC_CONTAINER_CREDENTIALS_FULL_URI";
/// The CCE Pod Identity token file variable.
pub const ENV_POD_IDENTITY_TOKEN_FILE: &str = "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// The variable of the SDK's OIDC-through-STS source, which poolwatch does not support.
const ENV_OIDC_PROVIDER_URN: &str = "HUAWEICLOUD_OIDC_PROVIDER_URN";
/// The profile file under the home directory when `HUAWEICLOUD_SDK_CREDENTIALS_FILE` is unset.
const DEFAULT_PROFILE: [&str; 2] = [".huaweicloud", "credentials"];

/// The environment, read through a lookup function so that tests inject their own.
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<OsString>,
}

impl<'a> Vars<'a> {
    /// Reads variables through `lookup` (`std::env::var_os` in production).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<OsString>) -> Self {
        Self { lookup }
    }

    /// A variable's trimmed text; unset and blank are both `None` (the SDK tests for truth).
    pub fn text(&self, name: &str) -> Result<Option<String>, UsageError> {
        match (self.lookup)(name) {
            None => Ok(None),
            Some(value) => match value.into_string() {
                Ok(s) if s.trim().is_empty() => Ok(None),
                Ok(s) => Ok(Some(s.trim().to_owned())),
                Err(_) => Err(UsageError(format!("{name} is not valid UTF-8"))),
            },
        }
    }

    /// A variable naming a file: any bytes the OS allows; blank is `None`.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        (self.lookup)(name)
            .filter(|v| !v.to_string_lossy().trim().is_empty())
            .map(PathBuf::from)
    }
}

/// Where a setting was found, for messages: a variable, or a key of the profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable.
    Environment,
    /// The `[basic]` section of this profile file.
    Profile(PathBuf),
}

/// A value and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: String,
    /// The variable (`HUAWEICLOUD_SDK_PROJECT_ID`) or the key and file (`project_id in
    /// /root/.huaweicloud/credentials [basic]`) it came from.
    pub from: String,
}

/// The credential source chosen.
#[derive(Debug)]
pub enum Source {
    /// An access key (with a security token for temporary keys), used as is.
    Keys {
        /// The keys.
        credentials: Credentials,
        /// Where they were found.
        origin: Origin,
    },
    /// An identity token exchanged at IAM through an identity provider.
    Federation {
        /// The identity provider's id (`X-Idp-Id`).
        identity_provider_id: String,
        /// The file holding the token, read when the exchange is made.
        token_file: PathBuf,
        /// Where the two were found.
        origin: Origin,
    },
    /// CCE Pod Identity.
    PodIdentity {
        /// The credential service's URL.
        url: ServiceUrl,
        /// The file holding the pod's authorization token, read when it is used.
        token_file: PathBuf,
    },
    /// The ECS metadata service (the node's agency).
    Metadata {
        /// Its base URL.
        endpoint: Endpoint,
    },
}

/// A source passed over because nothing configures it, and what would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source, e.g. `environment`.
    pub source: String,
    /// Why it was passed over and how to configure it.
    pub why: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.why)
    }
}

/// The outcome of [`choose`].
#[derive(Debug)]
pub struct Choice {
    /// The source to get credentials from.
    pub source: Source,
    /// The project id the source configures (`HUAWEICLOUD_SDK_PROJECT_ID`, a profile's
    /// `project_id`), used when `--project-id` is not given.
    pub project_id: Option<Setting>,
    /// The IAM endpoint configured: `HUAWEICLOUD_SDK_IAM_ENDPOINT`, else the profile's
    /// `iam_endpoint`; used when `--iam-endpoint` is not given.
    pub iam_endpoint: Option<Setting>,
    /// The sources passed over before it, in order.
    pub skipped: Vec<Skipped>,
    /// Settings that are ignored, worth telling the user about.
    pub warnings: Vec<String>,
}

/// What one source of the chain found.
enum Found {
    /// It configures credentials.
    Source {
        source: Source,
        project_id: Option<Setting>,
        iam_endpoint: Option<Setting>,
    },
    /// Nothing configures it.
    Nothing(Skipped),
}

/// One source of the chain, looked at lazily; it may add warnings.
type SourceCheck<'a> = &'a dyn Fn(&mut Vec<String>) -> Result<Found, UsageError>;

/// Decides the credential source from the environment (`vars`) and the profile file; the
/// metadata service at `metadata_endpoint` when nothing configures another one. A source that
/// is half configured is a [`UsageError`] that names what is missing.
pub fn choose(vars: &Vars<'_>, metadata_endpoint: &Endpoint) -> Result<Choice, UsageError> {
    let mut warnings = Vec::new();
    if vars.text(ENV_OIDC_PROVIDER_URN)?.is_some() {
        warnings.push(format!(
            "{ENV_OIDC_PROVIDER_URN} is set, but poolwatch does not support the SDK's HUAWEICLOUD_OIDC_* source (STS AssumeAgencyWithOIDC); it is ignored"
        ));
    }
    let env_iam = vars.text(ENV_IAM_ENDPOINT)?.map(|value| Setting {
        value,
        from: ENV_IAM_ENDPOINT.to_owned(),
    });
    let mut skipped = Vec::new();
    // Each source is looked at only when the ones before it configure nothing: a later
    // source's mistakes do not matter when an earlier one is used.
    let sources: [SourceCheck<'_>; 3] = [
        &|warnings| environment(vars, warnings),
        &|_| profile_file(vars),
        &|_| pod_identity(vars),
    ];
    for source in sources {
        match source(&mut warnings)? {
            Found::Source {
                source,
                project_id,
                iam_endpoint,
            } => {
                return Ok(Choice {
                    source,
                    project_id,
                    iam_endpoint: env_iam.or(iam_endpoint),
                    skipped,
                    warnings,
                });
            }
            Found::Nothing(why) => skipped.push(why),
        }
    }
    Ok(Choice {
        source: Source::Metadata {
            endpoint: metadata_endpoint.clone(),
        },
        project_id: None,
        iam_endpoint: env_iam,
        skipped,
        warnings,
    })
}

/// `HUAWEICLOUD_SDK_*`: federation when both of its variables are set, else the access key.
fn environment(vars: &Vars<'_>, warnings: &mut Vec<String>) -> Result<Found, UsageError> {
    let idp = vars.text(ENV_IDP_ID)?;
    let token_file = vars.path(ENV_ID_TOKEN_FILE);
    let ak = vars.text(ENV_ACCESS_KEY)?;
    let sk = vars.text(ENV_SECRET_KEY)?;
    let security_token = vars.text(ENV_SECURITY_TOKEN)?;
    let project_id = vars.text(ENV_PROJECT_ID)?.map(|value| Setting {
        value,
        from: ENV_PROJECT_ID.to_owned(),
    });
    let source = match (idp, token_file, ak, sk) {
        (Some(identity_provider_id), Some(token_file), ak, sk) => {
            if ak.is_some() || sk.is_some() {
                warnings.push(format!(
                    "{ENV_IDP_ID} and {ENV_ID_TOKEN_FILE} are set, so federation is used and {ENV_ACCESS_KEY}/{ENV_SECRET_KEY} are ignored, as Huawei's SDKs do"
                ));
            }
            Source::Federation {
                identity_provider_id,
                token_file,
                origin: Origin::Environment,
            }
        }
        (idp, token_file, Some(ak), Some(sk)) => {
            if idp.is_some() || token_file.is_some() {
                let (set, unset) = if idp.is_some() {
                    (ENV_IDP_ID, ENV_ID_TOKEN_FILE)
                } else {
                    (ENV_ID_TOKEN_FILE, ENV_IDP_ID)
                };
                warnings.push(format!(
                    "{set} is set but {unset} is not, so {ENV_ACCESS_KEY} is used, as Huawei's SDKs do"
                ));
            }
            let mut credentials = Credentials::new(ak, sk);
            if let Some(token) = security_token {
                credentials = credentials.with_security_token(token);
            }
            Source::Keys {
                credentials,
                origin: Origin::Environment,
            }
        }
        (Some(_), None, _, _) => {
            return Err(UsageError(format!(
                "{ENV_IDP_ID} is set but {ENV_ID_TOKEN_FILE} is not set: set it to the file holding the identity token (e.g. a projected ServiceAccount token), or unset {ENV_IDP_ID}"
            )));
        }
        (None, Some(_), _, _) => {
            return Err(UsageError(format!(
                "{ENV_ID_TOKEN_FILE} is set but {ENV_IDP_ID} is not set: set it to the id of the IAM identity provider that trusts the token's issuer"
            )));
        }
        (None, None, Some(ak), None) => {
            return Err(UsageError(format!(
                "{ENV_SECRET_KEY} is not set: export the secret access key of {} as {ENV_SECRET_KEY}",
                Credentials::new(ak, "").redacted_key_id()
            )));
        }
        (None, None, None, Some(_)) => {
            return Err(UsageError(format!(
                "{ENV_ACCESS_KEY} is not set: export your access key id as {ENV_ACCESS_KEY} and its secret as {ENV_SECRET_KEY}"
            )));
        }
        (None, None, None, None) if security_token.is_some() => {
            return Err(UsageError(format!(
                "{ENV_SECURITY_TOKEN} is set but {ENV_ACCESS_KEY} is not set: export the temporary access key id as {ENV_ACCESS_KEY} and its secret as {ENV_SECRET_KEY}"
            )));
        }
        (None, None, None, None) => {
            return Ok(Found::Nothing(Skipped {
                source: "environment".to_owned(),
                why: format!(
                    "{ENV_ACCESS_KEY} is not set: export your access key id as {ENV_ACCESS_KEY} and its secret as {ENV_SECRET_KEY}, or {ENV_IDP_ID} and {ENV_ID_TOKEN_FILE} for federation"
                ),
            }));
        }
    };
    Ok(Found::Source {
        source,
        project_id,
        iam_endpoint: None,
    })
}

/// The profile file's `[basic]` section. A missing default file, a file without `[basic]` and
/// a `[basic]` without credential keys are passed over, as the SDK does.
fn profile_file(vars: &Vars<'_>) -> Result<Found, UsageError> {
    let nothing = |why: String| {
        Ok(Found::Nothing(Skipped {
            source: "profile file".to_owned(),
            why,
        }))
    };
    let (path, explicit) = match vars.path(ENV_CREDENTIALS_FILE) {
        Some(path) => (path, true),
        None => match vars.path(HOME) {
            Some(home) => (
                home.join(DEFAULT_PROFILE[0]).join(DEFAULT_PROFILE[1]),
                false,
            ),
            None => {
                return nothing(format!(
                    "{HOME} is not set: set {ENV_CREDENTIALS_FILE} to the file's path"
                ));
            }
        },
    };
    let shown = path.display();
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| UsageError(format!("the profile file {shown} is not UTF-8")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return nothing(format!(
                "{shown} does not exist: create it with a [basic] section (ak, sk), or set {ENV_CREDENTIALS_FILE} to another file"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!(
                "{ENV_CREDENTIALS_FILE} names {shown}, which does not exist: correct or unset it"
            )));
        }
        Err(e) => {
            return Err(UsageError(format!(
                "cannot read the profile file {shown}: {e}"
            )));
        }
    };
    let basic = match profile::parse_basic(&text) {
        Ok(Some(basic)) => basic,
        Ok(None) => {
            return nothing(format!(
                "{shown} has no [{}] section",
                profile::BASIC_SECTION
            ));
        }
        Err(e) => {
            return Err(UsageError(format!("the profile file {shown}: {e}")));
        }
    };
    match profile_source(&basic, &path)? {
        Some(source) => {
            let setting = |key: &str| {
                basic.get(key).map(|value| Setting {
                    value: value.to_owned(),
                    from: format!("{key} in {shown} [{}]", profile::BASIC_SECTION),
                })
            };
            Ok(Found::Source {
                source,
                project_id: setting(profile::PROJECT_ID),
                iam_endpoint: setting(profile::IAM_ENDPOINT),
            })
        }
        None => nothing(format!(
            "[{}] of {shown} has neither {} and {} nor {} and {}",
            profile::BASIC_SECTION,
            profile::AK,
            profile::SK,
            profile::IDP_ID,
            profile::ID_TOKEN_FILE
        )),
    }
}

/// The `HOME` variable, where the SDK looks for `.huaweicloud/credentials` (`USERPROFILE` on
/// Windows).
#[cfg(not(windows))]
const HOME: &str = "HOME";
#[cfg(windows)]
const HOME: &str = "USERPROFILE";

/// The source a `[basic]` section configures: federation when `idp_id` and `id_token_file` are
/// both set, else `ak` and `sk`; `None` when it sets none of the four.
fn profile_source(
    basic: &BasicSection,
    path: &std::path::Path,
) -> Result<Option<Source>, UsageError> {
    use profile::{AK, ID_TOKEN_FILE, IDP_ID, SECURITY_TOKEN, SK};
    let origin = Origin::Profile(path.to_owned());
    let shown = path.display();
    let missing = |set: &str, unset: &str| {
        Err(UsageError(format!(
            "[{}] of the profile file {shown} sets {set} but not {unset}: add it",
            profile::BASIC_SECTION
        )))
    };
    match (
        basic.get(IDP_ID),
        basic.get(ID_TOKEN_FILE),
        basic.get(AK),
        basic.get(SK),
    ) {
        (Some(idp), Some(file), _, _) => Ok(Some(Source::Federation {
            identity_provider_id: idp.to_owned(),
            token_file: PathBuf::from(file),
            origin,
        })),
        (_, _, Some(ak), Some(sk)) => {
            let mut credentials = Credentials::new(ak, sk);
            if let Some(token) = basic.get(SECURITY_TOKEN) {
                credentials = credentials.with_security_token(token);
            }
            Ok(Some(Source::Keys {
                credentials,
                origin,
            }))
        }
        (Some(_), None, _, _) => missing(IDP_ID, ID_TOKEN_FILE),
        (None, Some(_), _, _) => missing(ID_TOKEN_FILE, IDP_ID),
        (None, None, Some(_), None) => missing(AK, SK),
        (None, None, None, Some(_)) => missing(SK, AK),
        (None, None, None, None) if basic.get(SECURITY_TOKEN).is_some() => {
            missing(SECURITY_TOKEN, "ak and sk")
        }
        (None, None, None, None) => Ok(None),
    }
}

/// CCE Pod Identity: both of its variables, or neither.
fn pod_identity(vars: &Vars<'_>) -> Result<Found, UsageError> {
    match (
        vars.text(ENV_POD_IDENTITY_URI)?,
        vars.path(ENV_POD_IDENTITY_TOKEN_FILE),
    ) {
        (Some(uri), Some(token_file)) => {
            let url = ServiceUrl::parse(&uri)
                .map_err(|e| UsageError(format!("{ENV_POD_IDENTITY_URI}: {e}")))?;
            Ok(Found::Source {
                source: Source::PodIdentity { url, token_file },
                project_id: None,
                iam_endpoint: None,
            })
        }
        (Some(_), None) => Err(UsageError(format!(
            "{ENV_POD_IDENTITY_URI} is set but {ENV_POD_IDENTITY_TOKEN_FILE} is not set: CCE sets both in pods with a Pod Identity association; set it to the file of the pod's authorization token"
        ))),
        (None, Some(_)) => Err(UsageError(format!(
            "{ENV_POD_IDENTITY_TOKEN_FILE} is set but {ENV_POD_IDENTITY_URI} is not set: CCE sets both in pods with a Pod Identity association; set it to the credential service's URL"
        ))),
        (None, None) => Ok(Found::Nothing(Skipped {
            source: "CCE Pod Identity".to_owned(),
            why: format!(
                "{ENV_POD_IDENTITY_URI} and {ENV_POD_IDENTITY_TOKEN_FILE} are not set: CCE sets them in pods whose ServiceAccount has a Pod Identity association"
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A lookup over fixed pairs, as if they were the whole environment.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("poolwatch-chain-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                panic!("cannot create {}: {e}", dir.display());
            }
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if let Err(e) = std::fs::write(&path, text) {
                panic!("cannot write {}: {e}", path.display());
            }
            path
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap_or_default()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn metadata() -> Endpoint {
        Endpoint::parse("http://169.254.169.254", true).unwrap()
    }

    fn choose_in(pairs: &[(&str, &str)]) -> Result<Choice, UsageError> {
        let lookup = env(pairs);
        choose(&Vars::new(&lookup), &metadata())
    }

    fn chosen(pairs: &[(&str, &str)]) -> Choice {
        match choose_in(pairs) {
            Ok(choice) => choice,
            Err(UsageError(msg)) => panic!("{pairs:?}: {msg}"),
        }
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        match choose_in(pairs) {
            Ok(choice) => panic!("{pairs:?} chose {:?}", choice.source),
            Err(UsageError(msg)) => msg,
        }
    }

    #[test]
    fn nothing_configured_means_the_metadata_service_after_naming_what_was_passed_over() {
        let home = TempDir::new("empty-home");
        let choice = chosen(&[("HOME", home.path())]);
        assert!(matches!(choice.source, Source::Metadata { .. }));
        let skipped: Vec<&str> = choice.skipped.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(skipped, ["environment", "profile file", "CCE Pod Identity"]);
        let text = choice
            .skipped
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for named in [
            "HUAWEICLOUD_SDK_AK is not set",
            "HUAWEICLOUD_SDK_IDP_ID",
            ".huaweicloud/credentials does not exist",
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
            "HC_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            assert!(text.contains(named), "{named}: {text}");
        }
        let choice = chosen(&[]);
        assert!(
            choice.skipped[1].why.contains("HOME is not set"),
            "{choice:?}"
        );
    }

    #[test]
    fn environment_keys_keep_todays_behaviour_and_messages() {
        let choice = chosen(&[
            ("HUAWEICLOUD_SDK_AK", "AKIDEXAMPLE"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
            ("HUAWEICLOUD_SDK_SECURITY_TOKEN", " "),
            ("HUAWEICLOUD_SDK_PROJECT_ID", "p1"),
        ]);
        let Source::Keys {
            credentials,
            origin: Origin::Environment,
        } = &choice.source
        else {
            panic!("{:?}", choice.source)
        };
        assert!(credentials.security_token.is_none(), "blank is unset");
        assert_eq!(credentials.key_id(), "AKIDEXAMPLE");
        assert_eq!(
            choice.project_id.map(|s| (s.value, s.from)),
            Some(("p1".to_owned(), "HUAWEICLOUD_SDK_PROJECT_ID".to_owned()))
        );
        assert!(choice.skipped.is_empty() && choice.warnings.is_empty());

        let choice = chosen(&[
            ("HUAWEICLOUD_SDK_AK", "AK"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
            ("HUAWEICLOUD_SDK_SECURITY_TOKEN", "tok"),
        ]);
        assert!(
            matches!(&choice.source, Source::Keys { credentials, .. } if credentials.security_token.is_some())
        );

        let msg = refused(&[("HUAWEICLOUD_SDK_AK", "AKIDEXAMPLE")]);
        assert!(msg.contains("HUAWEICLOUD_SDK_SK is not set"), "{msg}");
        assert!(!msg.contains("AKIDEXAMPLE"), "{msg}");
        let msg = refused(&[("HUAWEICLOUD_SDK_SK", "secret-value")]);
        assert!(msg.contains("HUAWEICLOUD_SDK_AK is not set"), "{msg}");
        assert!(!msg.contains("secret-value"), "{msg}");
        let msg = refused(&[("HUAWEICLOUD_SDK_SECURITY_TOKEN", "token-value")]);
        assert!(msg.contains("HUAWEICLOUD_SDK_AK is not"), "{msg}");
        assert!(!msg.contains("token-value"), "{msg}");
    }

    #[test]
    fn federation_variables_win_over_keys_and_half_of_them_is_an_error() {
        let choice = chosen(&[
            ("HUAWEICLOUD_SDK_IDP_ID", "my-idp"),
            ("HUAWEICLOUD_SDK_ID_TOKEN_FILE", "/var/run/token"),
            ("HUAWEICLOUD_SDK_AK", "AK"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
            ("HUAWEICLOUD_SDK_IAM_ENDPOINT", "https://iam.example"),
        ]);
        let Source::Federation {
            identity_provider_id,
            token_file,
            origin: Origin::Environment,
        } = &choice.source
        else {
            panic!("{:?}", choice.source)
        };
        assert_eq!(identity_provider_id, "my-idp");
        assert_eq!(token_file, Path::new("/var/run/token"));
        assert_eq!(
            choice.iam_endpoint.map(|s| s.from),
            Some("HUAWEICLOUD_SDK_IAM_ENDPOINT".to_owned())
        );
        assert!(
            choice.warnings[0].contains("ignored"),
            "{:?}",
            choice.warnings
        );

        // Half of federation with keys: the keys, as the SDK does, with a warning.
        let choice = chosen(&[
            ("HUAWEICLOUD_SDK_IDP_ID", "my-idp"),
            ("HUAWEICLOUD_SDK_AK", "AK"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
        ]);
        assert!(matches!(choice.source, Source::Keys { .. }));
        assert!(choice.warnings[0].contains("HUAWEICLOUD_SDK_ID_TOKEN_FILE is not"));

        // Half of federation alone: an error naming the other half.
        let msg = refused(&[("HUAWEICLOUD_SDK_IDP_ID", "my-idp")]);
        assert!(
            msg.contains("HUAWEICLOUD_SDK_ID_TOKEN_FILE is not"),
            "{msg}"
        );
        let msg = refused(&[("HUAWEICLOUD_SDK_ID_TOKEN_FILE", "/t")]);
        assert!(msg.contains("HUAWEICLOUD_SDK_IDP_ID is not"), "{msg}");
    }

    #[test]
    fn the_environment_wins_over_the_profile_file() {
        let home = TempDir::new("env-first");
        home.write(
            ".huaweicloud/credentials",
            "[basic]\nak = PROFILEAK\nsk = PROFILESK\nproject_id = p-profile\n",
        );
        let choice = chosen(&[
            ("HOME", home.path()),
            ("HUAWEICLOUD_SDK_AK", "ENVAK"),
            ("HUAWEICLOUD_SDK_SK", "ENVSK"),
        ]);
        assert!(
            matches!(&choice.source, Source::Keys { credentials, origin: Origin::Environment } if credentials.key_id() == "ENVAK")
        );
        assert_eq!(choice.project_id, None, "the profile is not read at all");
    }

    #[test]
    fn the_profile_file_gives_keys_project_and_iam_endpoint() {
        let home = TempDir::new("profile");
        let path = home.write(
            ".huaweicloud/credentials",
            "[basic]\nak = PROFILEAK\nsk = PROFILESK\nsecurity_token = T\nproject_id = p-profile\niam_endpoint = https://iam.profile.example\n",
        );
        let choice = chosen(&[("HOME", home.path())]);
        let Source::Keys {
            credentials,
            origin: Origin::Profile(from),
        } = &choice.source
        else {
            panic!("{:?}", choice.source)
        };
        assert_eq!(from, &path);
        assert_eq!(credentials.key_id(), "PROFILEAK");
        assert!(credentials.security_token.is_some());
        let project = choice
            .project_id
            .clone()
            .unwrap_or_else(|| panic!("no project"));
        assert_eq!(project.value, "p-profile");
        assert_eq!(
            project.from,
            format!("project_id in {} [basic]", path.display())
        );
        assert_eq!(
            choice.iam_endpoint.map(|s| s.value),
            Some("https://iam.profile.example".to_owned())
        );
        assert_eq!(choice.skipped[0].source, "environment");

        // HUAWEICLOUD_SDK_IAM_ENDPOINT wins over the profile's iam_endpoint.
        let choice = chosen(&[
            ("HOME", home.path()),
            ("HUAWEICLOUD_SDK_IAM_ENDPOINT", "https://iam.env.example"),
        ]);
        assert_eq!(
            choice.iam_endpoint.map(|s| s.value),
            Some("https://iam.env.example".to_owned())
        );
    }

    #[test]
    fn the_credentials_file_variable_names_another_file() {
        let dir = TempDir::new("explicit");
        let path = dir.write(
            "creds.ini",
            "[basic]\nidp_id = idp-from-file\nid_token_file = /t\nak = A\nsk = S\n",
        );
        let file = path.to_str().unwrap_or_default();
        let choice = chosen(&[
            ("HUAWEICLOUD_SDK_CREDENTIALS_FILE", file),
            ("HOME", "/nonexistent"),
        ]);
        assert!(matches!(
            &choice.source,
            Source::Federation { identity_provider_id, origin: Origin::Profile(_), .. } if identity_provider_id == "idp-from-file"
        ));
        let missing = dir.0.join("missing.ini");
        let msg = refused(&[(
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
            missing.to_str().unwrap_or_default(),
        )]);
        assert!(
            msg.contains("HUAWEICLOUD_SDK_CREDENTIALS_FILE names")
                && msg.contains("does not exist"),
            "{msg}"
        );
    }

    #[test]
    fn profiles_without_basic_credentials_are_passed_over_and_half_ones_refused() {
        let dir = TempDir::new("partial");
        for (text, skipped_because) in [
            ("[global]\nak = A\nsk = S\n", "has no [basic] section"),
            ("[basic]\nproject_id = p\n", "has neither ak and sk"),
        ] {
            let path = dir.write("c.ini", text);
            let choice = chosen(&[(
                "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
                path.to_str().unwrap_or_default(),
            )]);
            assert!(matches!(choice.source, Source::Metadata { .. }), "{text}");
            assert!(
                choice.skipped[1].why.contains(skipped_because),
                "{text}: {:?}",
                choice.skipped
            );
            assert_eq!(choice.project_id, None, "{text}");
        }
        for (text, named) in [
            ("[basic]\nak = A\n", "sets ak but not sk"),
            ("[basic]\nsk = secret-value\n", "sets sk but not ak"),
            ("[basic]\nidp_id = i\n", "sets idp_id but not id_token_file"),
            (
                "[basic]\nid_token_file = /t\n",
                "sets id_token_file but not idp_id",
            ),
            (
                "[basic]\nsecurity_token = token-value\n",
                "sets security_token",
            ),
            ("[basic]\nak = A\nak = B\n", "more than once"),
            ("[basic]\nak = A\nsecret-value", "not an INI file"),
        ] {
            let path = dir.write("c.ini", text);
            let msg = refused(&[(
                "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
                path.to_str().unwrap_or_default(),
            )]);
            assert!(msg.contains(named), "{text}: {msg}");
            assert!(!msg.contains("-value"), "{text}: {msg}");
        }
    }

    #[test]
    fn pod_identity_comes_before_the_metadata_service_and_needs_both_variables() {
        let home = TempDir::new("pod");
        let choice = chosen(&[
            ("HOME", home.path()),
            (
                "HC_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.2/v1/credentials",
            ),
            (
                "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/pod-token",
            ),
        ]);
        let Source::PodIdentity { url, token_file } = &choice.source else {
            panic!("{:?}", choice.source)
        };
        assert_eq!(url.to_string(), "http://169.254.170.2/v1/credentials");
        assert_eq!(token_file, Path::new("/var/run/pod-token"));
        assert_eq!(choice.skipped.len(), 2);

        let msg = refused(&[(
            "HC_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.2/v1/credentials",
        )]);
        assert!(
            msg.contains("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE is not set"),
            "{msg}"
        );
        let msg = refused(&[("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t")]);
        assert!(
            msg.contains("HC_CONTAINER_CREDENTIALS_FULL_URI is not set"),
            "{msg}"
        );
        let msg = refused(&[
            ("HC_CONTAINER_CREDENTIALS_FULL_URI", "not a url"),
            ("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t"),
        ]);
        assert!(
            msg.starts_with("HC_CONTAINER_CREDENTIALS_FULL_URI: "),
            "{msg}"
        );

        // Keys in the environment still win over Pod Identity.
        let choice = chosen(&[
            ("HUAWEICLOUD_SDK_AK", "AK"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
            (
                "HC_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.2/v1",
            ),
            ("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t"),
        ]);
        assert!(matches!(choice.source, Source::Keys { .. }));
    }

    #[test]
    fn the_unsupported_oidc_source_draws_a_warning() {
        let home = TempDir::new("oidc");
        let choice = chosen(&[
            ("HOME", home.path()),
            ("HUAWEICLOUD_OIDC_PROVIDER_URN", "urn"),
        ]);
        assert!(matches!(choice.source, Source::Metadata { .. }));
        assert!(
            choice.warnings[0].contains("not support"),
            "{:?}",
            choice.warnings
        );
    }
}
