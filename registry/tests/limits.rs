//! Hostile schemas: deep nesting must not make the compatibility check exponential, and
//! schemas past the configured size and depth are refused with a clear 42201 before any work.
//!
//! Scenario (the defect): a 2.3 KB schema of optional records nested 20 deep, whose innermost
//! field changed type, took seconds to refuse, doubling with every level, while its request
//! held the subject's lock in an open transaction. Here the same shape is checked at depths
//! 10, 20 and 30 (compatible and incompatible), each answered well within a second's budget.

mod common;

use std::time::{Duration, Instant};

use common::Fixture;
use serde_json::{Value, json};

/// Optional records nested `depth` deep: `L0 { v: int, next: ["null", L1 { ... }] }`, the
/// innermost record's `v` of type `leaf`.
fn nested(depth: usize, leaf: &str) -> Value {
    let mut schema = json!({
        "type": "record",
        "name": format!("L{depth}"),
        "fields": [{"name": "v", "type": leaf}],
    });
    for level in (0..depth).rev() {
        schema = json!({
            "type": "record",
            "name": format!("L{level}"),
            "fields": [
                {"name": "v", "type": "int"},
                {"name": "next", "type": ["null", schema], "default": null},
            ],
        });
    }
    schema
}

/// Budget for one check at depth 30 (a debug build on a shared machine: generous; the old
/// checker needed hours).
const BUDGET: Duration = Duration::from_secs(3);

#[tokio::test]
async fn nested_schemas_are_checked_in_polynomial_time() {
    let fixture = Fixture::start().await;
    let registry = &fixture.registry;
    for depth in [10, 20, 30] {
        let subject = format!("deep-{depth}-value");
        registry.register(&subject, &nested(depth, "int")).await;
        let incompatible = nested(depth, "string");
        let started = Instant::now();
        let reply =
            tokio::time::timeout(BUDGET * 4, registry.register_reply(&subject, &incompatible))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "depth {depth}: no answer to an incompatible registration within {:?}",
                        BUDGET * 4
                    )
                });
        let refused_in = started.elapsed();
        let path = format!("'L0{}.v'", ".next".repeat(depth));
        reply.assert_error(409, 409, &["'string'", "'int'", &path]);
        let started = Instant::now();
        let long = nested(depth, "long");
        let id = tokio::time::timeout(BUDGET * 4, registry.register(&subject, &long))
            .await
            .unwrap_or_else(|_| panic!("depth {depth}: no answer to a promotion"));
        let accepted_in = started.elapsed();
        assert!(id > 0);
        eprintln!(
            "depth {depth} ({} bytes): incompatible refused in {refused_in:?}, compatible accepted in {accepted_in:?}",
            incompatible.to_string().len()
        );
        assert!(
            refused_in < BUDGET && accepted_in < BUDGET,
            "depth {depth}: the check took {refused_in:?} / {accepted_in:?} (budget {BUDGET:?})"
        );
    }
    fixture.finish().await;
}

/// Records nested `depth` deep without unions, each referencing the next twice by name:
/// the expansion as a tree has 2^depth leaves, the schema only `depth` types.
fn shared_twice(depth: usize, leaf: &str) -> Value {
    let mut schema = json!({"type": "record", "name": format!("S{depth}"), "fields": [{"name": "v", "type": leaf}]});
    for level in (0..depth).rev() {
        schema = json!({
            "type": "record",
            "name": format!("S{level}"),
            "fields": [
                {"name": "a", "type": schema},
                {"name": "b", "type": format!("S{}", level + 1)},
            ],
        });
    }
    schema
}

#[tokio::test]
async fn a_type_named_in_many_places_is_checked_and_explained_once() {
    let fixture = Fixture::start().await;
    let registry = &fixture.registry;
    registry
        .register("shared-value", &shared_twice(30, "int"))
        .await;
    let started = Instant::now();
    let reply = tokio::time::timeout(
        BUDGET * 4,
        registry.register_reply("shared-value", &shared_twice(30, "string")),
    )
    .await
    .expect("an answer in time");
    let elapsed = started.elapsed();
    reply.assert_error(409, 409, &["'string'", "for the reasons given at"]);
    assert!(
        reply.message().len() < 20_000,
        "explained once per type: {} bytes",
        reply.message().len()
    );
    assert!(elapsed < BUDGET, "took {elapsed:?}");
    fixture.finish().await;
}

#[tokio::test]
async fn schemas_past_the_size_and_depth_limits_are_refused_before_any_check() {
    let fixture = Fixture::start().await;
    let registry = &fixture.registry;
    // Depth: records nested without unions, 33 deep, past the default of 32.
    let mut deep = json!("int");
    for level in (0..33).rev() {
        deep = json!({"type": "record", "name": format!("D{level}"), "fields": [{"name": "d", "type": deep}]});
    }
    registry
        .register_reply("deep-value", &deep)
        .await
        .assert_error(
            422,
            42201,
            &["33 levels deep", "at most 32", "REGISTRY_MAX_SCHEMA_DEPTH"],
        );
    // The optional-record shape at depth 31 (32 records) is accepted.
    registry.register("deep-ok-value", &nested(31, "int")).await;
    // JSON nested past what the parser reads gets the same kind of answer, not a parse error.
    let mut arrays = json!("int");
    for _ in 0..140 {
        arrays = json!({"type": "array", "items": arrays});
    }
    registry
        .register_reply("arrays-value", &arrays)
        .await
        .assert_error(
            422,
            42201,
            &["more than 128 levels", "REGISTRY_MAX_SCHEMA_DEPTH"],
        );
    // Size: a record of 6000 fields (past 256 KiB).
    let fields: Vec<Value> = (0..6000)
        .map(|i| json!({"name": format!("field_with_a_long_name_{i:05}"), "type": "string", "doc": "x"}))
        .collect();
    let big = json!({"type": "record", "name": "Big", "fields": fields});
    assert!(big.to_string().len() > 256 * 1024);
    registry
        .register_reply("big-value", &big)
        .await
        .assert_error(
            422,
            42201,
            &["bytes long", "at most 262144", "REGISTRY_MAX_SCHEMA_BYTES"],
        );
    // A body past what the API reads at all: 413 in Confluent's error format.
    let huge = "x".repeat(2 * 1024 * 1024);
    registry
        .post("/subjects/huge-value/versions", &json!({ "schema": huge }))
        .await
        .assert_error(413, 413, &["larger than"]);
    // Nothing was registered by the refusals.
    let subjects = registry.get("/subjects").await;
    assert_eq!(subjects.body, json!(["deep-ok-value"]), "{subjects:?}");
    fixture.finish().await;
}
