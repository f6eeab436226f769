use serde_json::{Map, Value, json};

use super::*;

fn parse(body: &Value, filter: PoolListFilter) -> PoolList {
    PoolList::parse(body.to_string().as_bytes(), filter).unwrap_or_else(|e| panic!("{e}"))
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v2", "kind": "PoolList", "items": items})
}

fn named(name: &str, phase: &str) -> Value {
    json!({"metadata": {"name": name}, "status": {"phase": phase}})
}

/// A whole pool as Huawei's API reference and the SDK's models describe it.
fn full_pool() -> Value {
    json!({
        "apiVersion": "v2",
        "kind": "Pool",
        "metadata": {
            "name": "pool-7d3f",
            "creationTimestamp": "2026-11-01T03:49:41Z",
            "labels": {"os.modelarts/name": "train-a100", "os.modelarts/workspace.id": "0"},
            "annotations": {"os.modelarts/description": "x"}
        },
        "spec": {
            "type": "Dedicate",
            "scope": ["Train", "Infer"],
            "resources": [
                {"flavor": "modelarts.vm.gpu.8ant8", "count": 4, "maxCount": 8},
                {"flavor": "modelarts.vm.cpu.8u", "count": 1, "maxCount": 1}
            ]
        },
        "status": {
            "phase": "Abnormal",
            "message": "2 nodes are not ready",
            "resources": {
                "available": [
                    {"flavor": "modelarts.vm.gpu.8ant8", "count": 2},
                    {"flavor": "modelarts.vm.cpu.8u", "count": 1}
                ],
                "abnormal": [{"flavor": "modelarts.vm.gpu.8ant8", "count": 2}],
                "creating": [],
                "deleting": []
            },
            "driver": {"gpu": {"version": "470.182.03", "state": "Running"}},
            "scope": [{"scopeType": "Train", "state": "Enabling"}]
        }
    })
}

#[test]
fn a_whole_pool_is_read_field_by_field() {
    let parsed = parse(&list(vec![full_pool()]), PoolListFilter::Current);
    assert_eq!(parsed.omitted, 0);
    assert_eq!(parsed.unusable, 0);
    assert_eq!(
        parsed.pools,
        vec![Pool {
            name: "pool-7d3f".into(),
            display_name: Some("train-a100".into()),
            phase: PoolPhase::Abnormal,
            message: Some("2 nodes are not ready".into()),
            pool_type: Some("Dedicate".into()),
            created: Some("2026-11-01T03:49:41Z".into()),
            flavors: vec![
                FlavorNodes {
                    flavor: "modelarts.vm.cpu.8u".into(),
                    count: Some(1),
                    max_count: Some(1),
                    available: Some(1),
                    ..FlavorNodes::default()
                },
                FlavorNodes {
                    flavor: "modelarts.vm.gpu.8ant8".into(),
                    count: Some(4),
                    max_count: Some(8),
                    available: Some(2),
                    abnormal: Some(2),
                    ..FlavorNodes::default()
                },
            ],
            gpu_driver: Some(DriverState {
                version: Some("470.182.03".into()),
                state: Some("Running".into()),
            }),
            npu_driver: None,
        }]
    );
}

#[test]
fn every_form_of_status_resources_is_read() {
    let pool = |spec: Value, resources: Value| {
        json!({"metadata": {"name": "p"}, "spec": {"resources": spec},
               "status": {"phase": "Running", "resources": resources}})
    };
    let one = json!([{"flavor": "f1", "count": 3}]);
    let two = json!([{"flavor": "f1", "count": 3}, {"flavor": "f2", "count": 1}]);
    let cases = [
        // The SDK's model: one {flavor, count} object per state.
        (
            one.clone(),
            json!({"available": {"flavor": "f1", "count": 2}}),
            vec![("f1", Some(2))],
        ),
        // Keyed by flavor.
        (
            two.clone(),
            json!({"available": {"f1": 2, "f2": 1}}),
            vec![("f1", Some(2)), ("f2", Some(1))],
        ),
        // A bare count: the only flavor's.
        (one.clone(), json!({"available": 2}), vec![("f1", Some(2))]),
        // A bare count with two flavors belongs to neither.
        (
            two.clone(),
            json!({"available": 2}),
            vec![("f1", None), ("f2", None)],
        ),
        // A flavor only the status names is shown too.
        (
            one,
            json!({"available": [{"flavor": "f0", "count": 1}]}),
            vec![("f0", Some(1)), ("f1", None)],
        ),
        // Mistyped: nothing.
        (
            two,
            json!({"available": "2", "abnormal": [1, {"count": 1}]}),
            vec![("f1", None), ("f2", None)],
        ),
    ];
    for (spec, resources, expected) in cases {
        let parsed = parse(
            &list(vec![pool(spec, resources.clone())]),
            PoolListFilter::Current,
        );
        let got: Vec<(&str, Option<i64>)> = parsed.pools[0]
            .flavors
            .iter()
            .map(|f| (f.flavor.as_str(), f.available))
            .collect();
        assert_eq!(got, expected, "{resources}");
    }
}

#[test]
fn unknown_missing_and_mistyped_fields_are_tolerated() {
    let items = vec![
        json!({"metadata": {"name": "a"}}),
        json!({"metadata": {"name": "b", "labels": {"os.modelarts/name": 7}, "creationTimestamp": []},
               "spec": {"type": {}, "resources": {"flavor": "x"}},
               "status": {"phase": "Scaling", "message": null, "resources": [], "driver": {"gpu": "on", "npu": {"state": 1}}}}),
        json!({"metadata": {"name": "c"}, "spec": {"resources": [
            {"flavor": "f", "count": -1, "maxCount": 1.5},
            {"flavor": 3, "count": 1},
            {"flavor": "", "count": 1},
            {"flavor": "g", "count": 18446744073709551615u64, "maxCount": "2"}
        ]}, "status": {"phase": "running"}}),
    ];
    let parsed = parse(&list(items), PoolListFilter::Current);
    assert_eq!(parsed.unusable, 0);
    let [a, b, c] = &parsed.pools[..] else {
        panic!("{parsed:?}")
    };
    assert_eq!(
        (a.phase, &a.display_name, &a.flavors),
        (PoolPhase::Other, &None, &vec![])
    );
    assert_eq!(b.phase, PoolPhase::Other);
    assert_eq!(
        (&b.display_name, &b.created, &b.pool_type, &b.message),
        (&None, &None, &None, &None)
    );
    assert!(b.flavors.is_empty() && b.gpu_driver.is_none() && b.npu_driver.is_none());
    assert_eq!(
        c.phase,
        PoolPhase::Running,
        "phases match case-insensitively"
    );
    assert_eq!(
        c.flavors,
        vec![
            FlavorNodes {
                flavor: "f".into(),
                ..FlavorNodes::default()
            },
            FlavorNodes {
                flavor: "g".into(),
                ..FlavorNodes::default()
            },
        ]
    );
}

#[test]
fn items_without_a_name_and_duplicates_are_counted_not_kept() {
    let mut first = named("dup", "Running");
    first["status"]["message"] = json!("first");
    let mut second = named("dup", "Error");
    second["status"]["message"] = json!("second");
    let long = "n".repeat(200);
    let items = vec![
        json!(1),
        json!("pool"),
        json!({"metadata": {}}),
        json!({"metadata": {"name": 5}}),
        json!({"metadata": {"name": ""}}),
        json!({"metadata": "x"}),
        first,
        second,
        named(&format!("{long}a"), "Running"),
        // The same name once cut: a duplicate too.
        named(&format!("{long}b"), "Running"),
    ];
    let parsed = parse(&list(items), PoolListFilter::Current);
    // Six items that are no pool, the second `dup`, and the long name that is `{long}a` once cut.
    assert_eq!(parsed.unusable, 8);
    assert_eq!(parsed.pools.len(), 2);
    let dup = parsed.pools.iter().find(|p| p.name == "dup");
    assert_eq!(
        dup.and_then(|p| p.message.as_deref()),
        Some("first"),
        "the first of a name is kept"
    );
    assert!(parsed.pools.iter().all(|p| p.name.len() <= NAME));
}

#[test]
fn strings_are_cut_to_their_limits() {
    let huge = "é".repeat(500_000);
    let item = json!({
        "metadata": {"name": huge, "creationTimestamp": huge, "labels": {"os.modelarts/name": huge}},
        "spec": {"type": huge, "resources": [{"flavor": huge, "count": 1}]},
        "status": {"phase": huge, "message": huge, "driver": {"npu": {"version": huge, "state": huge}}}
    });
    let body = list(vec![item]).to_string();
    assert!(body.len() < MAX_POOLS_BODY_BYTES * 9, "{}", body.len());
    // Over the limit as a whole: refused before parsing.
    assert!(PoolList::parse(body.as_bytes(), PoolListFilter::Current).is_err());
    let fits = "é".repeat(50_000);
    let item = json!({
        "metadata": {"name": fits, "creationTimestamp": fits, "labels": {"os.modelarts/name": fits}},
        "spec": {"type": fits, "resources": [{"flavor": fits, "count": 1}]},
        "status": {"phase": fits, "message": fits, "driver": {"npu": {"version": fits, "state": fits}}}
    });
    let parsed = parse(&list(vec![item]), PoolListFilter::Current);
    let pool = &parsed.pools[0];
    let npu = pool.npu_driver.clone().unwrap_or_default();
    for (text, max) in [
        (Some(&pool.name), NAME),
        (pool.display_name.as_ref(), DISPLAY_NAME),
        (pool.created.as_ref(), CREATED),
        (pool.pool_type.as_ref(), WORD),
        (pool.message.as_ref(), MESSAGE),
        (Some(&pool.flavors[0].flavor), FLAVOR),
        (npu.version.as_ref(), WORD),
        (npu.state.as_ref(), WORD),
    ] {
        let text = text.map(String::as_str).unwrap_or_default();
        assert!(
            text.len() <= max && text.ends_with(bounded::MARKER),
            "{max}: {text}"
        );
    }
}

#[test]
fn the_failed_list_makes_every_pool_failed_with_its_message() {
    let mut item = named("pool-x", "Running");
    item["status"]["message"] = json!("quota exceeded");
    let parsed = parse(
        &list(vec![item, named("pool-y", "Creating")]),
        PoolListFilter::Failed,
    );
    assert!(parsed.pools.iter().all(|p| p.phase == PoolPhase::Failed));
    assert_eq!(parsed.pools[0].message.as_deref(), Some("quota exceeded"));
}

#[test]
fn more_than_the_cap_keeps_the_worst_sorted_by_name() {
    let mut items: Vec<Value> = (0..10_000)
        .map(|i| named(&format!("run-{i:05}"), "Running"))
        .collect();
    items.insert(5_000, named("zz-error", "Error"));
    items.push(named("mm-abnormal", "Abnormal"));
    items.push(named("aa-creating", "Creating"));
    let parsed = parse(&list(items), PoolListFilter::Current);
    assert_eq!(parsed.pools.len(), MAX_POOLS);
    assert_eq!(parsed.omitted, 10_003 - MAX_POOLS);
    let names: Vec<&str> = parsed.pools.iter().map(|p| p.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for worst in ["zz-error", "mm-abnormal", "aa-creating"] {
        assert!(names.contains(&worst), "{worst}");
    }
    // The Running pools kept are the first by name.
    let running: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("run-"))
        .collect();
    let expected: Vec<String> = (0..MAX_POOLS - 3).map(|i| format!("run-{i:05}")).collect();
    assert_eq!(running, expected);
}

#[test]
fn many_flavors_keep_the_first_by_name() {
    let resources: Vec<Value> = (0..1_000)
        .rev()
        .map(|i| json!({"flavor": format!("f{i:04}"), "count": i}))
        .collect();
    let keyed: Map<String, Value> = (0..1_000).map(|i| (format!("k{i:04}"), json!(1))).collect();
    let item = json!({"metadata": {"name": "p"}, "spec": {"resources": resources},
                      "status": {"resources": {"abnormal": keyed}}});
    let parsed = parse(&list(vec![item]), PoolListFilter::Current);
    let flavors: Vec<(&str, Option<i64>)> = parsed.pools[0]
        .flavors
        .iter()
        .map(|f| (f.flavor.as_str(), f.count))
        .collect();
    let expected: Vec<(String, Option<i64>)> = (0..MAX_FLAVORS as i64)
        .map(|i| (format!("f{i:04}"), Some(i)))
        .collect();
    let expected: Vec<(&str, Option<i64>)> =
        expected.iter().map(|(f, c)| (f.as_str(), *c)).collect();
    assert_eq!(flavors, expected);
}

#[test]
fn bad_bodies_are_clear_errors() {
    let cases: [(&[u8], &str); 8] = [
        (b"", "truncated"),
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (br#"{"items":[{"metadata""#, "truncated"),
        (b"[1,2]", "not an object"),
        (br#"{"error":"x"}"#, "no `items`"),
        (br#"{"items":{}}"#, "not a list"),
        (br#"{"items":"pools"}"#, "not a list"),
        (br#"{"items":7}"#, "not a list"),
    ];
    for (body, expected) in cases {
        match PoolList::parse(body, PoolListFilter::Current) {
            Err(ParseError(msg)) => assert!(msg.contains(expected), "{msg}"),
            Ok(l) => panic!("{:?} parsed as {l:?}", String::from_utf8_lossy(body)),
        }
    }
    assert_eq!(
        PoolList::parse(br#"{"items":null}"#, PoolListFilter::Current),
        Ok(PoolList::default())
    );
    let long = format!(r#"{{"items":"{}"}}"#, "x".repeat(10_000));
    let msg = PoolList::parse(long.as_bytes(), PoolListFilter::Current)
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    assert!(msg.len() <= 100 + bounded::QUOTE, "{msg}");
}

#[test]
fn an_oversized_body_is_refused_before_parsing() {
    let body = vec![b' '; MAX_POOLS_BODY_BYTES + 1];
    let err = PoolList::parse(&body, PoolListFilter::Current);
    assert!(matches!(err, Err(ParseError(m)) if m.contains("limit")));
}

fn pools(names: &[(&str, PoolPhase)]) -> PoolList {
    PoolList {
        pools: names
            .iter()
            .map(|(name, phase)| Pool {
                name: (*name).into(),
                display_name: None,
                phase: *phase,
                message: None,
                pool_type: None,
                created: None,
                flavors: Vec::new(),
                gpu_driver: None,
                npu_driver: None,
            })
            .collect(),
        omitted: 0,
        unusable: 0,
    }
}

#[test]
fn merge_keeps_a_name_once_the_current_one() {
    let mut current = pools(&[("b", PoolPhase::Running), ("d", PoolPhase::Creating)]);
    current.unusable = 1;
    current.omitted = 2;
    let mut failed = pools(&[("a", PoolPhase::Failed), ("b", PoolPhase::Failed)]);
    failed.unusable = 3;
    let merged = PoolList::merge(current, failed);
    let got: Vec<(&str, PoolPhase)> = merged
        .pools
        .iter()
        .map(|p| (p.name.as_str(), p.phase))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", PoolPhase::Failed),
            ("b", PoolPhase::Running),
            ("d", PoolPhase::Creating)
        ]
    );
    assert_eq!((merged.omitted, merged.unusable), (2, 4));
}

#[test]
fn merge_cuts_to_the_worst() {
    let running: Vec<String> = (0..MAX_POOLS).map(|i| format!("r{i:02}")).collect();
    let current = pools(
        &running
            .iter()
            .map(|n| (n.as_str(), PoolPhase::Running))
            .collect::<Vec<_>>(),
    );
    let failed = pools(&[("zf", PoolPhase::Failed)]);
    let merged = PoolList::merge(current, failed);
    assert_eq!(merged.pools.len(), MAX_POOLS);
    assert_eq!(merged.omitted, 1);
    assert_eq!(merged.pools.last().map(|p| p.name.as_str()), Some("zf"));
    assert!(
        !merged
            .pools
            .iter()
            .any(|p| p.name == format!("r{:02}", MAX_POOLS - 1))
    );
}

#[test]
fn the_body_is_read_as_json_reads_it_to_the_end() {
    // A key given twice: the last counts, as for any JSON object.
    let twice =
        br#"{"items":[{"metadata":{"name":"old"}}],"items":[{"metadata":{"name":"new"}},1]}"#;
    let parsed = PoolList::parse(twice, PoolListFilter::Current);
    let names = parsed
        .as_ref()
        .map(|l| l.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
    assert_eq!(names, Ok(vec!["new".to_owned()]));
    assert_eq!(parsed.map(|l| l.unusable), Ok(1));
    let named_twice = br#"{"items":[{"metadata":{"name":"a","name":"b"},"status":{"phase":"Error","phase":"Running"}}]}"#;
    let pool = PoolList::parse(named_twice, PoolListFilter::Current)
        .ok()
        .and_then(|l| l.pools.into_iter().next());
    assert_eq!(
        pool.map(|p| (p.name, p.phase)),
        Some(("b".to_owned(), PoolPhase::Running))
    );
    // Bytes after the answer: not JSON.
    let err = PoolList::parse(br#"{"items":[]} {"#, PoolListFilter::Current);
    assert!(
        matches!(&err, Err(ParseError(m)) if m.contains("not JSON")),
        "{err:?}"
    );
    // Deep nesting is skipped without recursion (the parser reads known objects a few levels
    // deep, and serde_json skips the rest iteratively): no stack overflow, and the item stays.
    for field in ["spec", "other"] {
        let body = format!(
            r#"{{"items":[{{"metadata":{{"name":"p"}},"{field}":{}{}}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let parsed = PoolList::parse(body.as_bytes(), PoolListFilter::Current);
        assert_eq!(parsed.map(|l| l.pools.len()), Ok(1), "{field}");
    }
    // In the keyed form a flavor may be called `count`; beside a string `flavor` it is the
    // count of that flavor.
    let keyed = json!({"metadata": {"name": "p"}, "status": {"resources": {
        "available": {"count": 2, "f": 1},
        "abnormal": {"flavor": "f", "count": 3},
    }}});
    let pool = parse(&list(vec![keyed]), PoolListFilter::Current);
    let nodes: Vec<(&str, Option<i64>, Option<i64>)> = pool.pools[0]
        .flavors
        .iter()
        .map(|f| (f.flavor.as_str(), f.available, f.abnormal))
        .collect();
    assert_eq!(nodes, [("count", Some(2), None), ("f", Some(1), Some(3))]);
}
