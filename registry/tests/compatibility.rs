//! The compatibility matrix through HTTP: for every level, a history, a compatible next
//! schema (accepted) and an incompatible one (409 naming the field), checked both by
//! registration and by the `/compatibility` endpoint.

mod common;

use common::{Fixture, TestRegistry, anime};
use serde_json::{Value, json};

fn id() -> Value {
    json!({"name": "id", "type": "string"})
}
fn rating() -> Value {
    json!({"name": "rating", "type": "int"})
}
fn rating_default() -> Value {
    json!({"name": "rating", "type": "int", "default": 0})
}
fn title() -> Value {
    json!({"name": "title", "type": "string"})
}
fn title_default() -> Value {
    json!({"name": "title", "type": "string", "default": ""})
}

struct Case {
    level: &'static str,
    history: Vec<Vec<Value>>,
    compatible: Vec<Value>,
    /// The incompatible schema and the version its message must name.
    incompatible: Option<(Vec<Value>, i64)>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            level: "BACKWARD",
            history: vec![vec![id()]],
            compatible: vec![id(), rating_default()],
            incompatible: Some((vec![id(), rating()], 1)),
        },
        Case {
            level: "BACKWARD_TRANSITIVE",
            history: vec![vec![id()], vec![id(), rating_default()]],
            compatible: vec![id(), rating_default(), title_default()],
            // Fine against version 2 (it always wrote `rating`), not against version 1.
            incompatible: Some((vec![id(), rating()], 1)),
        },
        Case {
            level: "FORWARD",
            history: vec![vec![id(), rating()]],
            compatible: vec![id(), rating(), title()],
            incompatible: Some((vec![id()], 1)),
        },
        Case {
            level: "FORWARD_TRANSITIVE",
            history: vec![vec![id(), rating()], vec![id(), rating_default()]],
            compatible: vec![id(), rating_default(), title()],
            incompatible: Some((vec![id()], 1)),
        },
        Case {
            level: "FULL",
            history: vec![vec![id()]],
            compatible: vec![id(), rating_default()],
            incompatible: Some((vec![id(), rating()], 1)),
        },
        Case {
            level: "FULL_TRANSITIVE",
            history: vec![vec![id()], vec![id(), rating_default()]],
            compatible: vec![id(), rating_default(), title_default()],
            incompatible: Some((vec![id(), rating()], 1)),
        },
        Case {
            level: "NONE",
            history: vec![vec![id(), rating()]],
            compatible: vec![json!({"name": "id", "type": "long"})],
            incompatible: None,
        },
    ]
}

async fn check(registry: &TestRegistry, subject: &str, schema: &Value) -> Value {
    let reply = registry
        .post(
            &format!("/compatibility/subjects/{subject}/versions?verbose=true"),
            &json!({"schema": schema.to_string()}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

#[tokio::test]
async fn every_level_accepts_compatible_and_refuses_incompatible_schemas() {
    let fixture = Fixture::start().await;
    let registry = &fixture.registry;
    for case in cases() {
        let subject = format!("matrix-{}", case.level.to_lowercase());
        // The history goes in unchecked, then the level applies.
        let reply = registry
            .put(
                &format!("/config/{subject}"),
                &json!({"compatibility": "NONE"}),
            )
            .await;
        assert_eq!(reply.body, json!({"compatibility": "NONE"}), "{reply:?}");
        for fields in &case.history {
            registry.register(&subject, &anime(json!(fields))).await;
        }
        let reply = registry
            .put(
                &format!("/config/{subject}"),
                &json!({"compatibility": case.level}),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let versions_before = registry
            .get(&format!("/subjects/{subject}/versions"))
            .await
            .body;

        if let Some((fields, version)) = &case.incompatible {
            let schema = anime(json!(fields));
            let verdict = check(registry, &subject, &schema).await;
            assert_eq!(
                verdict["is_compatible"],
                json!(false),
                "{}: {verdict}",
                case.level
            );
            let messages = verdict["messages"].to_string();
            assert!(messages.contains("'rating'"), "{}: {messages}", case.level);

            let reply = registry.register_reply(&subject, &schema).await;
            let against = format!("({} against version {version})", case.level);
            reply.assert_error(
                409,
                409,
                &["'rating'", "anineplus.Anime", &against, &subject],
            );
            assert_eq!(
                registry
                    .get(&format!("/subjects/{subject}/versions"))
                    .await
                    .body,
                versions_before,
                "a refused schema adds no version"
            );
        }

        let schema = anime(json!(case.compatible));
        let verdict = check(registry, &subject, &schema).await;
        assert_eq!(
            verdict,
            json!({"is_compatible": true, "messages": []}),
            "{}",
            case.level
        );
        let id = registry.register(&subject, &schema).await;
        let latest = registry
            .get(&format!("/subjects/{subject}/versions/latest"))
            .await;
        assert_eq!(latest.body["id"], json!(id));
        assert_eq!(
            latest.body["version"],
            json!(case.history.len() + 1),
            "{}",
            case.level
        );
    }
    fixture.finish().await;
}

#[tokio::test]
async fn the_default_and_global_levels_apply_to_subjects_without_their_own() {
    let fixture = Fixture::start().await;
    let registry = &fixture.registry;
    assert_eq!(
        registry.get("/config").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    registry.register("global-a", &anime(json!([id()]))).await;
    // BACKWARD by default: a new field without default is refused.
    let reply = registry
        .register_reply("global-a", &anime(json!([id(), rating()])))
        .await;
    reply.assert_error(409, 409, &["'rating'", "(BACKWARD against version 1)"]);

    // Globally NONE: accepted.
    let reply = registry
        .put("/config", &json!({"compatibility": "none"}))
        .await;
    assert_eq!(reply.body, json!({"compatibility": "NONE"}));
    registry
        .register("global-a", &anime(json!([id(), rating()])))
        .await;

    // A subject's own level wins over the global one.
    registry
        .put("/config/global-a", &json!({"compatibility": "FORWARD"}))
        .await;
    // (Registering version 1's schema again would just answer its id.)
    let reply = registry
        .register_reply("global-a", &anime(json!([id(), title()])))
        .await;
    reply.assert_error(409, 409, &["'rating'", "(FORWARD against version 2)"]);

    // Checking against one given version, not the level's set.
    let verdict = registry
        .post(
            "/compatibility/subjects/global-a/versions/1",
            &json!({"schema": anime(json!([id(), title()])).to_string()}),
        )
        .await;
    assert_eq!(verdict.body, json!({"is_compatible": true}));
    let verdict = registry
        .post(
            "/compatibility/subjects/global-a/versions/latest?verbose=true",
            &json!({"schema": anime(json!([id(), title()])).to_string()}),
        )
        .await;
    assert_eq!(verdict.body["is_compatible"], json!(false));
    assert!(
        verdict.body["messages"][0]
            .as_str()
            .unwrap()
            .starts_with("reader field 'rating' of record 'anineplus.Anime' has no default")
    );
    fixture.finish().await;
}
