//! The schema linter, rule by rule: a schema that trips each rule (with its location) and a
//! close schema that passes; configuration; hostile schemas; enforcement at registration.

use outbox_core::compat::CompatibilityMode;
use outbox_core::lint::{LintConfig, LintContext, LintLevel, LintReport, Rule, Severity, lint};
use outbox_core::registry::{MemorySchemaStore, Registry};
use outbox_core::{Error, Schema};
use serde_json::json;

fn schema(json: &serde_json::Value) -> Schema {
    Schema::parse_json(json).expect("valid schema")
}

/// A documented record with these fields (each documented unless it says otherwise).
fn record(fields: serde_json::Value) -> Schema {
    let serde_json::Value::Array(fields) = fields else {
        panic!("fields must be an array")
    };
    let fields: Vec<serde_json::Value> = fields
        .into_iter()
        .map(|mut f| {
            if f.get("doc").is_none() {
                f["doc"] = json!("documented");
            }
            f
        })
        .collect();
    schema(
        &json!({"type":"record","name":"com.acme.OrderPlaced","doc":"An order was placed",
        "fields": fields}),
    )
}

fn run(schema: &Schema) -> LintReport {
    lint(
        schema,
        &LintContext::for_topic("orders"),
        &LintConfig::default(),
    )
}

/// The (rule, location) pairs of a report, for exact comparisons.
fn found(report: &LintReport) -> Vec<(Rule, String)> {
    report
        .violations
        .iter()
        .map(|v| (v.rule, v.location.clone()))
        .collect()
}

fn only(rule: Rule, location: &str) -> Vec<(Rule, String)> {
    vec![(rule, location.to_owned())]
}

/// A field with data, so the record is not a signal.
fn data() -> serde_json::Value {
    json!({"name":"quantity","type":"int"})
}

#[test]
fn a_well_designed_event_is_clean() {
    let s = record(json!([
        {"name":"order_id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
        {"name":"status","type":{"type":"enum","name":"Status","doc":"Where the order is",
            "symbols":["PLACED","PAID","UNKNOWN"],"default":"UNKNOWN"}},
        {"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line",
            "doc":"One line","fields":[{"name":"sku","type":"string","doc":"Stock unit"}]}}}
    ]));
    let report = run(&s);
    assert!(report.is_clean(), "{report:?}");
    assert!(!report.has_errors());
}

#[test]
fn doc_missing_on_records_fields_and_named_types() {
    let s = schema(&json!({"type":"record","name":"R","fields":[
        {"name":"quantity","type":"int"},
        {"name":"kind","doc":"d","type":{"type":"enum","name":"K","symbols":["A"]}},
        {"name":"hash","doc":" ","type":{"type":"fixed","name":"H","size":4,"doc":"a hash"}}
    ]}));
    let report = run(&s);
    assert_eq!(
        found(&report),
        vec![
            (Rule::DocMissing, "/".to_owned()),
            (Rule::DocMissing, "/fields/0".to_owned()),
            (Rule::DocMissing, "/fields/1/type".to_owned()),
            (Rule::DocMissing, "/fields/2".to_owned()),
        ]
    );
    let v = &report.violations[0];
    assert_eq!(v.severity, Severity::Error);
    assert_eq!(v.message, "record R has no doc");
    assert!(v.fix.contains("doc"));
    assert!(run(&record(json!([data()]))).is_clean());
}

#[test]
fn money_float_trips_on_money_names_only() {
    let s = record(json!([{"name":"totalPrice","type":"double"}, data()]));
    assert_eq!(found(&run(&s)), only(Rule::MoneyFloat, "/fields/0/type"));
    let s =
        record(json!([{"name":"refund_amount","type":["null","float"],"default":null}, data()]));
    assert_eq!(found(&run(&s)), only(Rule::MoneyFloat, "/fields/0/type/1"));
    // A rate is not money, and money in minor units or a decimal is fine.
    for ok in [
        json!({"name":"discount_rate","type":"double"}),
        json!({"name":"total_cents","type":"long"}),
        json!({"name":"latitude","type":"double"}),
    ] {
        assert!(run(&record(json!([ok, data()]))).is_clean(), "{ok}");
    }
}

#[test]
fn time_untyped_trips_on_times_without_logical_type() {
    for (field, location) in [
        (json!({"name":"created_at","type":"long"}), "/fields/0/type"),
        (
            json!({"name":"occurredAt","type":"string"}),
            "/fields/0/type",
        ),
        (
            json!({"name":"delivery_date","type":"int"}),
            "/fields/0/type",
        ),
        (
            json!({"name":"timestamp","type":["null","long"],"default":null}),
            "/fields/0/type/1",
        ),
    ] {
        let report = run(&record(json!([field, data()])));
        assert_eq!(found(&report), only(Rule::TimeUntyped, location), "{field}");
        assert_eq!(report.violations[0].severity, Severity::Warning);
    }
    let typed =
        json!({"name":"created_at","type":{"type":"long","logicalType":"timestamp-micros"}});
    assert!(run(&record(json!([typed, data()]))).is_clean());
    let not_time = json!({"name":"format","type":"string"});
    assert!(run(&record(json!([not_time, data()]))).is_clean());
}

#[test]
fn id_untyped_trips_on_free_string_ids() {
    let s = record(json!([{"name":"customerId","type":"string"}, data()]));
    assert_eq!(found(&run(&s)), only(Rule::IdUntyped, "/fields/0/type"));
    let uuid = json!({"name":"customerId","type":{"type":"string","logicalType":"uuid"}});
    assert!(run(&record(json!([uuid, data()]))).is_clean());
    // A numeric id is not a free string.
    let numeric = json!({"name":"customer_id","type":"long"});
    assert!(run(&record(json!([numeric, data()]))).is_clean());
}

#[test]
fn enum_as_string_trips_on_closed_sets() {
    let s = record(json!([{"name":"payment_status","type":"string"}, data()]));
    assert_eq!(found(&run(&s)), only(Rule::EnumAsString, "/fields/0/type"));
    let e = json!({"name":"payment_status","type":{"type":"enum","name":"S","doc":"d",
        "symbols":["OK","UNKNOWN"],"default":"UNKNOWN"}});
    assert!(run(&record(json!([e, data()]))).is_clean());
    let free = json!({"name":"comment","type":"string"});
    assert!(run(&record(json!([free, data()]))).is_clean());
}

#[test]
fn stream_union_trips_at_the_top_of_a_stream_only() {
    let a = json!({"type":"record","name":"A","doc":"a","fields":[
        {"name":"quantity","type":"int","doc":"d"}]});
    let b = json!({"type":"record","name":"B","doc":"b","fields":[
        {"name":"quantity","type":"int","doc":"d"}]});
    let union = schema(&json!([a, b]));
    let report = run(&union);
    assert_eq!(found(&report), only(Rule::StreamUnion, "/"));
    assert_eq!(report.violations[0].severity, Severity::Error);
    // Without a stream (a shared type, say), the rule does not apply.
    let report = lint(&union, &LintContext::default(), &LintConfig::default());
    assert!(report.is_clean(), "{report:?}");
    // A union inside a field is a different matter.
    let field = json!({"name":"payment","type":["int","string"]});
    assert!(run(&record(json!([field]))).is_clean());
}

#[test]
fn stream_multiple_types_trips_on_a_second_record_name() {
    let s = record(json!([data()]));
    let ctx =
        LintContext::for_topic("orders").with_stream_types(["com.acme.OrderCancelled".to_owned()]);
    let report = lint(&s, &ctx, &LintConfig::default());
    assert_eq!(found(&report), only(Rule::StreamMultipleTypes, "/name"));
    assert!(
        report.violations[0]
            .message
            .contains("com.acme.OrderCancelled")
    );
    let same =
        LintContext::for_topic("orders").with_stream_types(["com.acme.OrderPlaced".to_owned()]);
    assert!(lint(&s, &same, &LintConfig::default()).is_clean());
    // Renamed, with the old name as an alias: the same type, evolved.
    let renamed = schema(&json!({"type":"record","name":"com.acme.OrderSubmitted",
        "aliases":["com.acme.OrderPlaced"],"doc":"d","fields":[
        {"name":"quantity","type":"int","doc":"d"}]}));
    assert!(lint(&renamed, &same, &LintConfig::default()).is_clean());
}

#[test]
fn event_signal_trips_on_records_of_ids_and_times() {
    let s = record(json!([
        {"name":"order_id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}
    ]));
    let report = run(&s);
    assert_eq!(found(&report), only(Rule::EventSignal, "/fields"));
    assert_eq!(report.violations[0].severity, Severity::Warning);
    assert_eq!(
        found(&run(&record(json!([])))),
        only(Rule::EventSignal, "/fields")
    );
    let with_data = record(json!([
        {"name":"order_id","type":{"type":"string","logicalType":"uuid"}}, data()
    ]));
    assert!(run(&with_data).is_clean());
}

#[test]
fn size_large_trips_over_the_threshold() {
    let s = record(
        json!([{"name":"hash","type":{"type":"fixed","name":"Blob","doc":"d",
        "size":70000}}]),
    );
    let report = run(&s);
    assert_eq!(found(&report), only(Rule::SizeLarge, "/"));
    assert!(
        report.violations[0].message.contains("70000 bytes"),
        "{report:?}"
    );
    let small = record(
        json!([{"name":"hash","type":{"type":"fixed","name":"Blob","doc":"d",
        "size":60000}}]),
    );
    assert!(run(&small).is_clean());
    // Collections multiply: 8 assumed items of 8 items of a 2 KiB fixed is 128 KiB.
    let nested = record(
        json!([{"name":"grid","type":{"type":"array","items":{"type":"array",
        "items":{"type":"fixed","name":"Cell","doc":"d","size":2048}}}}]),
    );
    assert_eq!(found(&run(&nested)), only(Rule::SizeLarge, "/"));
}

#[test]
fn size_estimate_ends_on_recursive_and_exponential_schemas() {
    // A linked list refers to itself: counted once.
    let list = record(
        json!([{"name":"next","type":["null",{"type":"record","name":"Node",
        "doc":"d","fields":[{"name":"value","type":"int","doc":"d"},
        {"name":"next","type":["null","Node"],"default":null,"doc":"d"}]}],"default":null},
        data()]),
    );
    assert!(run(&list).is_clean(), "{:?}", run(&list));
    // Thirty levels of records, each holding the previous one twice: 2^30 paths, estimated
    // in linear time and saturating rather than overflowing.
    let mut def = json!({"type":"record","name":"L0","doc":"d","fields":[
        {"name":"quantity","type":"int","doc":"d"}]});
    for level in 1..30 {
        def = json!({"type":"record","name":format!("L{level}"),"doc":"d","fields":[
            {"name":"a","type":def,"doc":"d"},
            {"name":"b","type":format!("L{}", level - 1),"doc":"d"}]});
    }
    let wide = schema(&def);
    let report = run(&wide);
    assert_eq!(found(&report), only(Rule::SizeLarge, "/"));
}

#[test]
fn optional_no_default_trips_on_null_unions_without_default() {
    let s = record(json!([{"name":"note","type":["null","string"]}, data()]));
    let report = run(&s);
    assert_eq!(found(&report), only(Rule::OptionalNoDefault, "/fields/0"));
    assert_eq!(report.violations[0].severity, Severity::Error);
    let s = record(json!([{"name":"note","type":["null","string"],"default":null}, data()]));
    assert!(run(&s).is_clean());
}

#[test]
fn deeply_nested_schemas_are_reported_not_overflowed() {
    // 100 nested arrays: parsed (the parser is fine at this depth), linted without recursion.
    let mut ty = json!("int");
    for _ in 0..100 {
        ty = json!({"type":"array","items":ty});
    }
    let s = record(json!([{"name":"deep","type":ty}]));
    let report = run(&s);
    let deep: Vec<_> = report.of(Rule::NestingDeep).collect();
    assert_eq!(deep.len(), 1, "{report:?}");
    assert!(deep[0].location.starts_with("/fields/0/type/items/items"));
}

#[test]
fn huge_enums_and_many_fields_lint_in_linear_time() {
    let symbols: Vec<String> = (0..100_000).map(|i| format!("S{i}")).collect();
    let fields: Vec<serde_json::Value> = (0..20_000)
        .map(|i| json!({"name":format!("f{i}"),"type":"int","doc":"d"}))
        .collect();
    let mut all = fields;
    all.push(
        json!({"name":"kind","doc":"d","type":{"type":"enum","name":"Big","doc":"d",
        "symbols":symbols}}),
    );
    let s = record(serde_json::Value::Array(all));
    let started = std::time::Instant::now();
    let report = run(&s);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // 20 000 ints of 5 bytes each is 100 000 bytes: over the 64 KiB default.
    assert_eq!(found(&report), only(Rule::SizeLarge, "/"));
}

#[test]
fn configuration_turns_rules_off_changes_severity_and_threshold_per_subject() {
    let s = schema(&json!({"type":"record","name":"R","fields":[
        {"name":"price","type":"double"}, {"name":"quantity","type":"int"}]}));
    let config = LintConfig::from_toml_str(
        r#"
        [rules]
        money-float = "warning"

        [subjects."payments-value"]
        rules = { doc-missing = "off", money-float = "off" }
        max_size_bytes = 1
        "#,
    )
    .expect("valid config");
    let orders = lint(&s, &LintContext::for_topic("orders"), &config);
    let severities: Vec<(Rule, Severity)> = orders
        .violations
        .iter()
        .map(|v| (v.rule, v.severity))
        .collect();
    assert_eq!(
        severities,
        [
            (Rule::DocMissing, Severity::Error),
            (Rule::DocMissing, Severity::Error),
            (Rule::MoneyFloat, Severity::Warning),
            (Rule::DocMissing, Severity::Error),
        ]
    );
    let payments = lint(&s, &LintContext::for_topic("payments"), &config);
    assert_eq!(found(&payments), only(Rule::SizeLarge, "/"));
}

#[test]
fn the_words_of_the_name_based_rules_can_be_replaced() {
    let s = record(json!([
        {"name":"fare","type":"double"},
        {"name":"price","type":"double"},
        {"name":"BookingRef","type":"string"},
        {"name":"quantity","type":"int"}
    ]));
    let config = LintConfig::from_toml_str("[names]\nmoney = [\"Fare\"]\nid = [\"ref\"]\n")
        .expect("valid config");
    let report = lint(&s, &LintContext::for_topic("bookings"), &config);
    assert_eq!(
        found(&report),
        vec![
            (Rule::MoneyFloat, "/fields/0/type".to_owned()),
            (Rule::IdUntyped, "/fields/2/type".to_owned()),
        ]
    );
    // The defaults flag the price and not the fare.
    assert_eq!(found(&run(&s)), only(Rule::MoneyFloat, "/fields/1/type"));
}

/// A list or a map of prices is money in floats as much as one price is; the location is the
/// items' (or values') type.
#[test]
fn name_rules_look_through_arrays_maps_and_options() {
    let s = record(json!([
        {"name":"prices","type":{"type":"array","items":"double"}},
        {"name":"fees","type":["null",{"type":"map","values":{"type":"array","items":"float"}}],"default":null},
        {"name":"created_at","type":{"type":"array","items":"long"}},
        {"name":"amounts","type":{"type":"array","items":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}},
        {"name":"totals","type":{"type":"array","items":["null","string","double"]}},
        data()
    ]));
    assert_eq!(
        found(&run(&s)),
        vec![
            (Rule::MoneyFloat, "/fields/0/type/items".to_owned()),
            (Rule::MoneyFloat, "/fields/1/type/1/values/items".to_owned()),
            (Rule::TimeUntyped, "/fields/2/type/items".to_owned()),
        ]
    );
}

/// A `[names]` entry of several words (`fareAmt`) could never equal one word of a name, so
/// it would silently match nothing and pass the schema it was written for.
#[test]
fn names_entries_must_be_single_words() {
    for (text, expected) in [
        (
            "[names]\nmoney = [\"price\", \"fareAmt\"]",
            "names.money: \"fareAmt\" is not one word (fare, amt)",
        ),
        (
            "[names]\nid = [\"ride_no\"]",
            "names.id: \"ride_no\" is not one word (ride, no)",
        ),
        (
            "[names]\ntime = [\"\"]",
            "names.time: \"\" is not one word (it has no letters or digits)",
        ),
        ("[names]\nclosed_set = [\"été\"]", "names.closed_set"),
    ] {
        let message = LintConfig::from_toml_str(text).expect_err(text).to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
    // One word in any case, padded or not, is the word of a name.
    let config = LintConfig::from_toml_str("[names]\nmoney = [\" AMT \", \"fare2\"]\n")
        .expect("valid config");
    let s = record(json!([
        {"name":"fareAmt","type":"double"},
        {"name":"fare2_due","type":"double"},
        {"name":"price","type":"double"}
    ]));
    let report = lint(&s, &LintContext::default(), &config);
    assert_eq!(
        found(&report),
        vec![
            (Rule::MoneyFloat, "/fields/0/type".to_owned()),
            (Rule::MoneyFloat, "/fields/1/type".to_owned()),
        ]
    );
}

#[test]
fn malformed_configuration_is_a_clear_error() {
    let cases = [
        ("[rules]\ndoc-mising = \"off\"", "rules.doc-mising"),
        (
            "[rules]\ndoc-missing = \"loud\"",
            "unknown severity \"loud\"",
        ),
        ("max_size_bytes = -1", "line 1"),
        ("max_size_bytes = \"big\"", "line 1"),
        ("colour = 1", "unknown field `colour`"),
        (
            "[subjects.x]\nrules = { nope = \"off\" }",
            "subjects.\"x\".rules.nope",
        ),
        ("[rules", "line 1"),
        ("[names]\nmoneys = []", "unknown field `moneys`"),
        ("[names]\nmoney = \"price\"", "line 2"),
        ("max_size_bytes = 99999999999999999999999", "line 1"),
    ];
    for (text, expected) in cases {
        let err = LintConfig::from_toml_str(text).expect_err(text);
        let message = err.to_string();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{message}");
        assert!(message.contains(expected), "{text:?}: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
    // Deeply nested TOML does not overflow the stack.
    let deep = format!("x = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(LintConfig::from_toml_str(&deep).is_err());
}

#[test]
fn configuration_files_are_bounded_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(2 * 1024 * 1024)).expect("write");
    let err = LintConfig::from_file(&big)
        .expect_err("too big")
        .to_string();
    assert!(err.contains("big.toml") && err.contains("limit"), "{err}");
    let missing = LintConfig::from_file(&dir.path().join("none.toml"))
        .expect_err("missing")
        .to_string();
    assert!(missing.contains("none.toml"), "{missing}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rules]\nsize = \"off\"").expect("write");
    let err = LintConfig::from_file(&bad).expect_err("bad").to_string();
    assert!(
        err.contains("bad.toml: rules.size: unknown rule \"size\""),
        "{err}"
    );
}

#[test]
fn rule_ids_are_stable_and_parse_back() {
    for rule in Rule::ALL {
        assert_eq!(rule.id().parse::<Rule>(), Ok(rule));
        assert!(!rule.fix().is_empty() && !rule.fix().contains('\n'));
    }
    assert_eq!("deny".parse::<LintLevel>().ok(), Some(LintLevel::Deny));
    assert!("loud".parse::<LintLevel>().is_err());
}

#[tokio::test]
async fn the_registry_refuses_new_schemas_that_break_rules_at_deny() {
    let registry = Registry::new(MemorySchemaStore::default());
    let undocumented = schema(&json!({"type":"record","name":"R","fields":[
        {"name":"quantity","type":"int"}]}));
    // Registered before the rules were enforced: stays registrable (idempotent).
    let before = registry
        .register("orders-value", &undocumented)
        .await
        .expect("allowed");
    let registry = registry.with_lint(LintLevel::Deny, LintConfig::default());
    let again = registry
        .register("orders-value", &undocumented)
        .await
        .expect("existing");
    assert_eq!(before.id, again.id);

    let v2 = schema(&json!({"type":"record","name":"R","fields":[
        {"name":"quantity","type":"int"},{"name":"price","type":"double","default":0.0}]}));
    match registry.register("orders-value", &v2).await {
        Err(Error::LintFailed {
            subject,
            violations,
        }) => {
            assert_eq!(subject, "orders-value");
            let rules: Vec<Rule> = violations.iter().map(|v| v.rule).collect();
            assert!(rules.contains(&Rule::MoneyFloat), "{rules:?}");
            assert!(violations.iter().all(|v| v.severity == Severity::Error));
        }
        other => panic!("expected LintFailed, got {other:?}"),
    }
    assert_eq!(
        registry
            .version("orders-value", None)
            .await
            .expect("v1")
            .version,
        1
    );

    // Thousands of violations make a short message (the error keeps them all).
    let fields: Vec<serde_json::Value> = (0..5_000)
        .map(|i| json!({"name":format!("f{i}"),"type":"int"}))
        .collect();
    let wide = schema(&json!({"type":"record","name":"Wide","fields":fields}));
    match registry.register("wide-value", &wide).await {
        Err(e @ Error::LintFailed { .. }) => {
            let message = e.to_string();
            assert!(message.ends_with("; and 4981 more"), "{message:.200}");
            assert!(message.len() < 4_000);
            let Error::LintFailed { violations, .. } = e else {
                unreachable!("matched above")
            };
            assert_eq!(violations.len(), 5_001);
        }
        other => panic!("expected LintFailed, got {other:?}"),
    }

    // At Warn, nothing is refused and the observer hears of every violation.
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&heard);
    let warn = Registry::new(MemorySchemaStore::default())
        .with_lint(LintLevel::Warn, LintConfig::default())
        .on_lint(move |subject, report| {
            if let Ok(mut log) = log.lock() {
                log.push((subject.to_owned(), report.violations.len()));
            }
        });
    warn.register("orders-value", &v2)
        .await
        .expect("warn registers");
    warn.register("orders-value", &v2)
        .await
        .expect("again: not linted twice");
    assert_eq!(
        heard.lock().map(|h| h.clone()).unwrap_or_default(),
        [("orders-value".to_owned(), 4)]
    );

    // Warnings alone do not refuse.
    let clean = schema(&json!({"type":"record","name":"R","doc":"d","fields":[
        {"name":"quantity","type":"int","doc":"d"},
        {"name":"status","type":"string","doc":"d","default":"new"}]}));
    let report = registry.lint("orders-value", &clean).await.expect("lint");
    assert!(!report.is_clean() && !report.has_errors(), "{report:?}");
    registry
        .register("orders-value", &clean)
        .await
        .expect("warnings pass");

    // The registered versions are the stream's type: another record name is refused, even
    // where compatibility is not checked.
    let registry = Registry::new(MemorySchemaStore::default())
        .with_default_mode(CompatibilityMode::None)
        .with_lint(LintLevel::Deny, LintConfig::default());
    registry
        .register("orders-value", &clean)
        .await
        .expect("first type");
    let other = schema(&json!({"type":"record","name":"Other","doc":"d","fields":[
        {"name":"quantity","type":"int","doc":"d"}]}));
    let err = registry
        .register("orders-value", &other)
        .await
        .expect_err("second type");
    assert!(err.to_string().contains("stream-multiple-types"), "{err}");
}
