//! Property tests over everything that reads untrusted input: the statistics parser and the
//! temporary-credential parser (any bytes from the network), the signer's canonicalisation and the simulator's parsing of what
//! it received, the interval parser, endpoints and whole specs. None may panic; the signer's
//! pieces keep their invariants.

use poolwatch::api::{Federation, LocalSecretReference, OperatorIdentity, PoolStatisticsWatchSpec};
use poolwatch::fetch::profile::parse_basic;
use poolwatch::modelarts::bounded;
use poolwatch::modelarts::signer::{
    self, Authorization, RequestToSign, SdkDate, canonical_query, canonical_uri, encode_component,
    parse_query, percent_decode,
};
use poolwatch::modelarts::temporary::parse_credential_answer;
use poolwatch::modelarts::{Credentials, Endpoint, PoolStatistics};
use poolwatch::operator::target::{WatchTarget, parse_interval};
use poolwatch::operator::trust::EndpointPolicy;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The first and last second the date strategies draw (jiff's whole range, which the SDK's
/// `YYYYMMDDTHHMMSSZ` format covers): the ends a random draw seldom reaches.
#[test]
fn sdk_dates_at_the_ends_of_time_round_trip() {
    for secs in [0, jiff::Timestamp::MAX.as_second()] {
        let text = jiff::Timestamp::from_second(secs)
            .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_default();
        let date = SdkDate::parse(&text).map(|d| (d.unix_seconds(), d.to_string()));
        assert_eq!(date, Some((secs, text.clone())), "{text}");
    }
}

/// Any JSON value, shallow: the leaves ListPools answers are made of, and some that are wrong.
fn json_values() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,80}".prop_map(Value::String),
        prop_oneof![
            Just("Running"),
            Just("Abnormal"),
            Just("Error"),
            Just("Creating"),
            Just("Deleting"),
            Just("dup"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        let key = prop_oneof![
            Just("metadata".to_owned()),
            Just("name".to_owned()),
            Just("labels".to_owned()),
            Just("os.modelarts/name".to_owned()),
            Just("spec".to_owned()),
            Just("status".to_owned()),
            Just("phase".to_owned()),
            Just("message".to_owned()),
            Just("resources".to_owned()),
            Just("available".to_owned()),
            Just("abnormal".to_owned()),
            Just("flavor".to_owned()),
            Just("count".to_owned()),
            Just("driver".to_owned()),
            Just("gpu".to_owned()),
            "\\PC{0,8}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Pool-list bodies: mostly `{"items": [...]}` of random items, sometimes any JSON or bytes.
fn pool_list_bodies() -> impl Strategy<Value = Vec<u8>> {
    // Pool-shaped items: names from a small set (so duplicates happen), random everything else.
    let shaped_item = (
        "p[0-9]{1,2}|\\PC{0,70}",
        json_values(),
        json_values(),
        json_values(),
        json_values(),
    )
        .prop_map(|(name, phase, message, spec, resources)| {
            serde_json::json!({
                "metadata": {"name": name, "labels": {"os.modelarts/name": message.clone()}},
                "spec": {"type": phase.clone(), "resources": spec},
                "status": {"phase": phase, "message": message, "resources": resources},
            })
        });
    prop_oneof![
        4 => proptest::collection::vec(shaped_item, 0..60)
            .prop_map(|items| serde_json::json!({"items": items}).to_string().into_bytes()),
        3 => proptest::collection::vec(json_values(), 0..40)
            .prop_map(|items| serde_json::json!({"kind": "PoolList", "items": items}).to_string().into_bytes()),
        1 => json_values().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// JSON-ish text: mostly the statistics shape with random values, sometimes anything.
fn statistics_bodies() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1e999".to_owned()),
        Just("-1".to_owned()),
    ];
    let state = prop_oneof![
        Just("creating"),
        Just("created"),
        Just("failed"),
        Just("pending"),
        Just("deleting"),
        Just("other"),
    ];
    let shaped = (
        proptest::collection::vec((state, value.clone()), 0..7),
        value,
    )
        .prop_map(|(fields, time)| {
            let status: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!(
                r#"{{"statistics":{{"status":{{{}}}}},"operationTime":{time}}}"#,
                status.join(",")
            )
            .into_bytes()
        });
    prop_oneof![
        3 => shaped,
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => "\\PC{0,200}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_statistics_parser_never_panics(body in statistics_bodies()) {
        if let Ok(stats) = PoolStatistics::parse(&body) {
            // Counts are never negative: a negative count is a wrong answer, not a count.
            for count in [stats.creating, stats.created, stats.failed, stats.pending, stats.deleting]
                .into_iter()
                .flatten()
            {
                prop_assert!(count >= 0);
            }
        }
    }

    #[test]
    fn the_pool_list_parser_never_panics_and_its_result_is_bounded_sorted_and_unique(
        body in pool_list_bodies(),
        failed in any::<bool>(),
    ) {
        use poolwatch::modelarts::pools::{self, MAX_FLAVORS, MAX_POOLS};
        use poolwatch::modelarts::{PoolList, PoolListFilter, PoolPhase};
        let filter = if failed { PoolListFilter::Failed } else { PoolListFilter::Current };
        match PoolList::parse(&body, filter) {
            Ok(list) => {
                prop_assert!(list.pools.len() <= MAX_POOLS);
                let names: Vec<&str> = list.pools.iter().map(|p| p.name.as_str()).collect();
                let mut sorted = names.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(&names, &sorted, "sorted by name, each once");
                for pool in &list.pools {
                    prop_assert!(!pool.name.is_empty() && pool.name.len() <= pools::NAME);
                    prop_assert!(!failed || pool.phase == PoolPhase::Failed);
                    let texts = [
                        (pool.display_name.as_deref(), pools::DISPLAY_NAME),
                        (pool.message.as_deref(), pools::MESSAGE),
                        (pool.pool_type.as_deref(), pools::WORD),
                        (pool.created.as_deref(), pools::CREATED),
                    ];
                    for (text, max) in texts {
                        prop_assert!(text.is_none_or(|t| t.len() <= max));
                    }
                    prop_assert!(pool.flavors.len() <= MAX_FLAVORS);
                    for flavor in &pool.flavors {
                        prop_assert!(flavor.flavor.len() <= pools::FLAVOR);
                        let counts = [flavor.count, flavor.max_count, flavor.available,
                            flavor.abnormal, flavor.creating, flavor.deleting];
                        prop_assert!(counts.iter().flatten().all(|n| *n >= 0));
                    }
                }
                // Merging with itself changes nothing: a name in both lists is kept once.
                let merged = PoolList::merge(list.clone(), list.clone());
                prop_assert_eq!(merged.pools, list.pools);
            }
            Err(e) => prop_assert!(e.0.len() <= 100 + bounded::QUOTE, "{}", e.0),
        }
    }

    #[test]
    fn well_formed_bodies_are_accepted_with_their_counts(
        counts in proptest::array::uniform5(proptest::option::of(0i64..1_000_000)),
        time in "[0-9 :.+-]{0,40}",
    ) {
        let states = ["creating", "created", "failed", "pending", "deleting"];
        let fields: Vec<String> = states
            .iter()
            .zip(counts)
            .filter_map(|(state, count)| count.map(|n| format!("{state:?}:{n}")))
            .collect();
        let body = format!(
            r#"{{"statistics":{{"status":{{{}}}}},"operationTime":{}}}"#,
            fields.join(","),
            serde_json::to_string(&time).unwrap()
        );
        let parsed = PoolStatistics::parse(body.as_bytes());
        prop_assert!(parsed.is_ok(), "{body} was refused: {parsed:?}");
        let stats = parsed.unwrap();
        prop_assert_eq!(
            [stats.creating, stats.created, stats.failed, stats.pending, stats.deleting],
            counts
        );
        prop_assert_eq!(stats.operation_time.as_deref(), Some(time.as_str()));
    }

    /// Whatever the strings of an answer, what the parser keeps or says of them is bounded:
    /// `operationTime` to its limit, an error's quote of a value to its own.
    #[test]
    fn no_string_of_an_answer_is_kept_or_quoted_past_its_limit(
        time in "\\PC{0,600}",
        count in prop_oneof!["\\PC{0,600}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
                             "[0-9]{1,600}", "\\[[0-9,]{0,600}\\]"],
    ) {
        let body = format!(
            r#"{{"statistics":{{"status":{{"created":{count}}}}},"operationTime":{}}}"#,
            serde_json::to_string(&time).unwrap_or_default()
        );
        match PoolStatistics::parse(body.as_bytes()) {
            Ok(stats) => {
                let kept = stats.operation_time.unwrap_or_default();
                prop_assert!(kept.len() <= bounded::OPERATION_TIME, "{} bytes", kept.len());
                prop_assert!(time.starts_with(kept.strip_suffix(bounded::MARKER).unwrap_or(&kept)));
            }
            // The message's own words are under 100 bytes.
            Err(error) => prop_assert!(
                error.to_string().len() <= 100 + bounded::QUOTE,
                "{} bytes: {error}",
                error.to_string().len()
            ),
        }
    }

    #[test]
    fn a_cut_is_a_bounded_prefix_ending_on_a_character(text in "\\PC{0,200}", max in 0usize..300) {
        let cut = bounded::cut(&text, max);
        prop_assert!(cut.len() <= max || cut.is_empty());
        if text.len() <= max {
            prop_assert_eq!(cut.as_ref(), text.as_str());
        } else {
            let kept = cut.strip_suffix(bounded::MARKER).unwrap_or(&cut);
            prop_assert!(text.starts_with(kept));
            prop_assert_eq!(bounded::cut_owned(text.clone(), max), cut.as_ref());
        }
    }

    #[test]
    fn cut_bodies_are_refused_not_misread(cut in 1usize..60) {
        let body = br#"{"statistics":{"status":{"creating":0,"created":9,"failed":0,"pending":0,"deleting":1}},"operationTime":"2025-03-27 11:48:55 +0000 UTC"}"#;
        let cut = cut.min(body.len() - 1);
        prop_assert!(PoolStatistics::parse(&body[..body.len() - cut]).is_err());
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes_and_round_trips(s in "\\PC{0,40}") {
        let encoded = encode_component(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        prop_assert_eq!(percent_decode(&encoded), s.as_bytes().to_vec());
    }

    #[test]
    fn canonical_uris_end_with_a_slash_and_never_panic(path in "(/[\\PC&&[^/]]{0,8}){0,5}/?") {
        let uri = canonical_uri(&path);
        prop_assert!(uri.ends_with('/'));
        prop_assert!(uri.starts_with('/'));
    }

    #[test]
    fn canonical_queries_are_order_independent(
        mut pairs in proptest::collection::vec(("\\PC{0,6}", "\\PC{0,6}"), 0..6)
    ) {
        let forward = canonical_query(&pairs);
        pairs.reverse();
        prop_assert_eq!(&canonical_query(&pairs), &forward);
        // What the simulator parses back signs the same.
        let parsed = parse_query(&forward);
        prop_assert_eq!(canonical_query(&parsed), forward);
    }

    #[test]
    fn raw_queries_and_authorizations_parse_without_panic(raw in "\\PC{0,80}") {
        let _ = parse_query(&raw);
        let _ = Authorization::parse(&raw);
        let _ = Authorization::parse(&format!("SDK-HMAC-SHA256 {raw}"));
        let _ = SdkDate::parse(&raw);
    }

    #[test]
    fn signatures_parse_and_never_show_the_secret(
        path in "(/[a-zA-Z0-9%{} ._-]{0,8}){0,4}",
        query in proptest::collection::vec(("[a-zA-Z0-9 ._=&-]{0,6}", "\\PC{0,6}"), 0..4),
        secs in 0i64..=jiff::Timestamp::MAX.as_second(),
    ) {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let request = RequestToSign {
            method: "GET",
            host: "modelarts.example.internal:8443",
            path: if path.is_empty() { "/" } else { &path },
            query: &query,
            headers: &[("Content-Type", "application/json")],
            body: b"",
        };
        let secret = "property-secret-key-never-shown-000";
        let credentials = Credentials::new("PROPERTYAK0000000001", secret);
        let date = SdkDate::parse(&format!(
            "{}",
            jiff::Timestamp::from_second(secs).unwrap().strftime("%Y%m%dT%H%M%SZ")
        )).expect("a date in range");
        prop_assert_eq!(date.unix_seconds(), secs);
        let a = signer::sign(&request, &credentials, date);
        prop_assert!(Authorization::parse(&a.authorization).is_some());
        prop_assert!(!a.authorization.contains(secret));
        prop_assert!(a.headers.iter().all(|(_, v)| !v.contains(secret)));
        let shown = format!("{a:?}");
        prop_assert!(!shown.contains(secret));
    }

    #[test]
    fn sdk_dates_round_trip(secs in 0i64..=jiff::Timestamp::MAX.as_second()) {
        let text = jiff::Timestamp::from_second(secs).unwrap().strftime("%Y%m%dT%H%M%SZ").to_string();
        let date = SdkDate::parse(&text).expect("parses");
        prop_assert_eq!(date.to_string(), text);
    }

    #[test]
    fn intervals_parse_or_explain_themselves(text in "[0-9hms.µnu+-]{0,12}|\\PC{0,12}") {
        match parse_interval(&text) {
            Ok(interval) => prop_assert!(interval.as_secs() >= 30),
            Err(e) => {
                prop_assert_eq!(e.field, "interval");
                prop_assert!(!e.problem.is_empty());
            }
        }
    }

    #[test]
    fn endpoints_parse_without_panic(
        scheme in "(https?|ftp|)",
        host in "\\PC{0,20}",
        port in proptest::option::of(any::<u32>()),
        path in "\\PC{0,10}",
        allow_http in any::<bool>(),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let input = format!("{scheme}://{host}{port}{path}");
        if let Ok(endpoint) = Endpoint::parse(&input, allow_http) {
            let shown = endpoint.to_string();
            prop_assert!(shown.starts_with("http://") || shown.starts_with("https://"));
        }
    }

    #[test]
    fn any_spec_resolves_or_names_a_field(
        project_id in proptest::option::of("\\PC{0,70}"),
        workspace_id in "\\PC{0,70}",
        region in proptest::option::of("[a-z]{1,3}-[a-z]{1,8}-[0-9]{1,2}|\\PC{0,12}"),
        endpoint in proptest::option::of("(https?://)?\\PC{0,30}"),
        iam_endpoint in proptest::option::of("(https?://)?\\PC{0,30}"),
        interval in "[0-9]{1,4}(s|m|h)|\\PC{0,8}",
        allow_http in any::<bool>(),
        sources in proptest::bits::u8::masked(0b111),
    ) {
        let spec = PoolStatisticsWatchSpec {
            project_id,
            workspace_id,
            region,
            endpoint,
            iam_endpoint,
            credentials_secret_ref: (sources & 1 != 0)
                .then(|| LocalSecretReference { name: "creds".to_owned() }),
            federation: (sources & 2 != 0).then(|| Federation {
                service_account_name: "reader".to_owned(),
                identity_provider_id: "cce-oidc".to_owned(),
                audience: "client".to_owned(),
            }),
            operator_identity: (sources & 4 != 0).then(OperatorIdentity::default),
            interval,
            suspend: false,
            pool_details: false,
        };
        let policy = EndpointPolicy { allow_http, ..EndpointPolicy::default() };
        match WatchTarget::from_spec(&spec, &policy) {
            Ok(target) => prop_assert!(target.interval.as_secs() >= 30),
            Err(e) => {
                prop_assert!(
                    ["endpoint", "region", "iamEndpoint", "projectId", "interval", "workspaceId", "credentialsSecretRef"]
                        .contains(&e.field),
                    "{e}"
                );
                prop_assert!(e.to_string().starts_with("spec."));
            }
        }
    }
}

/// Credential answers: every shape the SDKs accept with random values, sometimes anything.
fn credential_answers() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        "[A-Za-z0-9+/=]{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        "\\PC{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("null".to_owned()),
        Just("{}".to_owned()),
        Just(r#""2999-01-01T00:00:00.000000Z""#.to_owned()),
        Just(r#""1999-01-01T00:00:00Z""#.to_owned()),
    ];
    let key = prop_oneof![
        Just("access"),
        Just("accessKeyId"),
        Just("secret"),
        Just("secret_access_key"),
        Just("securitytoken"),
        Just("securityToken"),
        Just("expires_at"),
        Just("expiration"),
        Just("other"),
    ];
    let wrapper = prop_oneof![Just("credential"), Just("credentials"), Just("")];
    let shaped =
        (proptest::collection::vec((key, value), 0..9), wrapper).prop_map(|(fields, wrapper)| {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            let object = format!("{{{}}}", fields.join(","));
            let body = if wrapper.is_empty() {
                object
            } else {
                format!("{{{wrapper:?}:{object}}}")
            };
            body.into_bytes()
        });
    prop_oneof![
        3 => shaped,
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Whatever IAM, Pod Identity or the metadata service sends, the parser answers without
    /// panicking; what it accepts is usable: header-safe keys, a security token, a future expiry.
    #[test]
    fn credential_answers_never_panic_and_accepted_ones_are_usable(body in credential_answers()) {
        let now: jiff::Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        if let Ok(temporary) = parse_credential_answer(&body, now) {
            let key = temporary.credentials.key_id();
            prop_assert!(!key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(temporary.credentials.security_token.is_some());
            prop_assert!(temporary.expires_at > now);
        }
    }

    /// Well-formed answers are accepted with exactly the values sent.
    #[test]
    fn well_formed_credential_answers_are_read_exactly(
        access in "[A-Z0-9]{16,32}",
        secret in "[A-Za-z0-9]{20,40}",
        token in "[A-Za-z0-9+/=]{20,200}",
        hours in 1i64..48,
    ) {
        let now: jiff::Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        let expires = now + jiff::SignedDuration::from_hours(hours);
        let body = serde_json::json!({"credential": {
            "access": access, "secret": secret, "securitytoken": token,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string(),
        }});
        let parsed = parse_credential_answer(body.to_string().as_bytes(), now).unwrap();
        prop_assert_eq!(parsed.credentials.key_id(), access.as_str());
        prop_assert_eq!(parsed.expires_at, expires);
        let shown = format!("{:?} {}", parsed.credentials, parsed.credentials);
        prop_assert!(!shown.contains(&secret) && !shown.contains(&token));
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any profile file (`~/.huaweicloud/credentials`) is read or refused without panicking,
    /// and a refusal never quotes the file (it may hold keys).
    #[test]
    fn profile_files_never_panic_and_errors_quote_nothing(
        lines in proptest::collection::vec(
            prop_oneof![
                "\\[[a-zA-Z]{0,8}\\]",
                "[a-z_]{1,12} ?[=:] ?SECRET[a-z0-9]{0,8}",
                "\\PC{0,30}",
                Just(String::new()),
            ],
            0..12,
        ),
    ) {
        let text = lines.join("\n");
        if let Err(error) = parse_basic(&text) {
            prop_assert!(!error.to_string().contains("SECRET"), "{error}");
        }
    }
}
