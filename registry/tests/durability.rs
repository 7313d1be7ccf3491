//! Concurrency and durability: many writers on two registry instances sharing one database,
//! and a restart that keeps everything.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::TestRegistry;
use serde_json::{Value, json};

const TASKS: usize = 8;
const SCHEMAS: usize = 10;
const SHARED_SUBJECTS: usize = 4;

/// The j-th schema of a compatible sequence (each adds a field with a default).
fn evolving(namespace: &str, j: usize) -> Value {
    let mut fields = vec![json!({"name": "id", "type": "string"})];
    for k in 0..j {
        fields.push(json!({"name": format!("f{k}"), "type": "int", "default": k}));
    }
    json!({"type": "record", "name": "Anime", "namespace": namespace, "fields": fields})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_two_instances_get_distinct_ids_and_exact_versions() {
    let db = common::database().await;
    let instances = [
        TestRegistry::start(&db.url).await,
        TestRegistry::start(&db.url).await,
    ];

    // Task t writes on instance t % 2: the shared sequence under subject t % 4 (so each
    // shared subject has one writer per instance, racing), and its own sequence under its
    // own subject.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (url, http) = (instances[t % 2].url.clone(), instances[t % 2].http.clone());
        tasks.push(tokio::spawn(async move {
            let shared = format!("shared-{}", t % SHARED_SUBJECTS);
            let own = format!("own-{t}");
            let mut ids = Vec::new();
            for j in 0..SCHEMAS {
                for (subject, schema) in [
                    (&shared, evolving("anineplus", j)),
                    (&own, evolving(&format!("task{t}"), j)),
                ] {
                    let response = http
                        .post(format!("{url}/subjects/{subject}/versions"))
                        .header("content-type", "application/vnd.schemaregistry.v1+json")
                        .body(json!({"schema": schema.to_string()}).to_string())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(status, 200, "{subject} schema {j}: {body}");
                    ids.push((subject.clone(), j, body["id"].as_i64().unwrap()));
                }
            }
            ids
        }));
    }
    let mut by_schema: HashMap<(bool, String, usize), BTreeSet<i64>> = HashMap::new();
    for task in tasks {
        for (subject, j, id) in task.await.unwrap() {
            let shared = subject.starts_with("shared");
            let key = if shared {
                "anineplus".to_owned()
            } else {
                subject
            };
            by_schema.entry((shared, key, j)).or_default().insert(id);
        }
    }
    // One id per distinct schema, whichever task, instance or subject registered it.
    for (key, ids) in &by_schema {
        assert_eq!(ids.len(), 1, "{key:?} got ids {ids:?}");
    }
    let all: Vec<i64> = by_schema.values().flatten().copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), SCHEMAS * (1 + TASKS));
    assert_eq!(distinct.len(), all.len(), "two schemas share an id");

    // Every subject holds exactly versions 1..=M, version v being schema v-1.
    let reader = &instances[1];
    let mut subjects: Vec<String> = (0..SHARED_SUBJECTS)
        .map(|s| format!("shared-{s}"))
        .collect();
    subjects.extend((0..TASKS).map(|t| format!("own-{t}")));
    assert_eq!(
        reader.get("/subjects").await.body,
        json!(subjects.iter().collect::<BTreeSet<_>>())
    );
    for subject in &subjects {
        let versions = reader.get(&format!("/subjects/{subject}/versions")).await;
        assert_eq!(
            versions.body,
            json!((1..=SCHEMAS).collect::<Vec<_>>()),
            "{subject}"
        );
        let namespace = if subject.starts_with("shared") {
            "anineplus".to_owned()
        } else {
            format!("task{}", subject.trim_start_matches("own-"))
        };
        for version in 1..=SCHEMAS {
            let got = reader
                .get(&format!("/subjects/{subject}/versions/{version}"))
                .await;
            let key_subject = if namespace == "anineplus" {
                "anineplus".to_owned()
            } else {
                subject.clone()
            };
            let expected = by_schema[&(namespace == "anineplus", key_subject, version - 1)]
                .first()
                .copied()
                .unwrap();
            assert_eq!(got.body["id"], json!(expected), "{subject} v{version}");
        }
    }
    // A shared schema lists every subject that registered it.
    let first_shared = by_schema[&(true, "anineplus".to_owned(), 0)]
        .first()
        .copied()
        .unwrap();
    let usages = reader
        .get(&format!("/schemas/ids/{first_shared}/subjects"))
        .await;
    assert_eq!(usages.body.as_array().unwrap().len(), SHARED_SUBJECTS);

    // No schema row was inserted twice.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM schemas")
        .fetch_one(instances[0].registry.store().pool())
        .await
        .unwrap();
    assert_eq!(rows as usize, distinct.len());

    for instance in instances {
        instance.stop().await;
    }
    db.remove().await;
}

#[tokio::test]
async fn a_restart_keeps_schemas_versions_settings_and_the_id_sequence() {
    let db = common::database().await;
    let first = TestRegistry::start(&db.url).await;
    let mut ids = BTreeMap::new();
    for j in 0..3 {
        ids.insert(
            j,
            first
                .register("anime-value", &evolving("anineplus", j))
                .await,
        );
    }
    let shared = first
        .register("other-value", &evolving("anineplus", 0))
        .await;
    assert_eq!(shared, ids[&0]);
    first
        .put("/config/anime-value", &json!({"compatibility": "FULL"}))
        .await;
    first
        .put("/mode/other-value", &json!({"mode": "READONLY"}))
        .await;
    assert_eq!(
        first.delete("/subjects/anime-value/versions/1").await.body,
        json!(1)
    );
    // Warm the first instance's cache; the second must read from the database.
    first.get(&format!("/schemas/ids/{}", ids[&2])).await;
    first.stop().await;

    let second = TestRegistry::start(&db.url).await;
    assert_eq!(
        second.get("/subjects/anime-value/versions").await.body,
        json!([2, 3])
    );
    assert_eq!(
        second
            .get("/subjects/anime-value/versions?deleted=true")
            .await
            .body,
        json!([1, 2, 3])
    );
    let latest = second.get("/subjects/anime-value/versions/latest").await;
    assert_eq!(latest.body["id"], json!(ids[&2]));
    assert_eq!(latest.body["version"], json!(3));
    let schema = second.get(&format!("/schemas/ids/{}", ids[&1])).await;
    let text: Value = serde_json::from_str(schema.body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(text, evolving("anineplus", 1));
    assert_eq!(
        second.get("/config/anime-value").await.body,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        second.get("/mode/other-value").await.body,
        json!({"mode": "READONLY"})
    );
    // The id sequence continues after the restart.
    let next = second
        .register("anime-value", &evolving("anineplus", 3))
        .await;
    assert!(next > *ids.values().max().unwrap(), "{next} after {ids:?}");
    assert_eq!(
        second.get("/subjects/anime-value/versions").await.body,
        json!([2, 3, 4])
    );
    second.stop().await;
    db.remove().await;
}
