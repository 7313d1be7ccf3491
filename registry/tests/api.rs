//! The REST API's other promises: schema equality by canonical form, reads of schemas and
//! versions in Confluent's shapes, references, settings, and IMPORT mode.

mod common;

use common::{Fixture, anime};
use serde_json::{Value, json};

fn v1() -> Value {
    anime(json!([{"name": "id", "type": "string"}, {"name": "title", "type": "string"}]))
}

#[tokio::test]
async fn equal_schemas_share_one_id_across_whitespace_key_order_and_subjects() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let id = r.register("anime-value", &v1()).await;

    let respaced = r#"{ "fields" : [ {"type":"string", "name":"id"},
        {"name": "title", "type": "string"} ],
        "namespace": "anineplus", "name": "Anime", "type": "record" }"#;
    let reply = r
        .post(
            "/subjects/anime-value/versions",
            &json!({"schema": respaced}),
        )
        .await;
    assert_eq!(reply.body, json!({"id": id}));
    assert_eq!(
        r.get("/subjects/anime-value/versions").await.body,
        json!([1])
    );
    // Same schema, another subject: same global id, that subject's version 1.
    assert_eq!(r.register("archive-value", &v1()).await, id);
    // A different default is a different schema.
    let other_default = anime(
        json!([{"name": "id", "type": "string"}, {"name": "title", "type": "string", "default": "?"}]),
    );
    let other = r.register("anime-value", &other_default).await;
    assert_ne!(other, id);

    // Lookup by schema, in any spelling.
    let found = r
        .post("/subjects/anime-value", &json!({"schema": respaced}))
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["subject"], json!("anime-value"));
    assert_eq!(found.body["id"], json!(id));
    assert_eq!(found.body["version"], json!(1));
    let schema: Value = serde_json::from_str(found.body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema, v1());
    fixture.finish().await;
}

#[tokio::test]
async fn reads_answer_in_confluents_shapes_and_content_type() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let id = r.register("anime-value", &v1()).await;
    r.register("anime-key", &json!("string")).await;

    let types = r.get("/schemas/types").await;
    assert_eq!(types.body, json!(["AVRO"]));
    assert_eq!(types.content_type, "application/vnd.schemaregistry.v1+json");

    let by_id = r.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(by_id.body.as_object().unwrap().len(), 1, "{by_id:?}");
    let text = by_id.body["schema"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), v1());
    assert!(!text.contains(' '), "canonical text is compact: {text}");
    assert_eq!(
        r.get(&format!(
            "/schemas/ids/{id}?subject=anime-value&deleted=true"
        ))
        .await
        .status,
        200
    );

    let raw = r.get(&format!("/schemas/ids/{id}/schema")).await;
    assert_eq!(raw.body, v1());
    assert_eq!(raw.content_type, "application/vnd.schemaregistry.v1+json");
    assert_eq!(
        r.get(&format!("/schemas/ids/{id}/subjects")).await.body,
        json!(["anime-value"])
    );
    assert_eq!(
        r.get(&format!("/schemas/ids/{id}/versions")).await.body,
        json!([{"subject": "anime-value", "version": 1}])
    );

    let version = r.get("/subjects/anime-value/versions/1").await;
    assert_eq!(
        version.body,
        json!({"subject": "anime-value", "version": 1, "id": id, "schema": text})
    );
    assert_eq!(
        r.get("/subjects/anime-value/versions/-1").await.body,
        version.body
    );
    assert_eq!(
        r.get("/subjects/anime-value/versions/latest/schema")
            .await
            .body,
        v1()
    );
    assert_eq!(
        r.get("/subjects/anime-key/versions/1/schema").await.body,
        json!("string")
    );

    assert_eq!(
        r.get("/subjects").await.body,
        json!(["anime-key", "anime-value"])
    );
    assert_eq!(
        r.get("/subjects?subjectPrefix=anime-v").await.body,
        json!(["anime-value"])
    );
    assert_eq!(r.get("/").await.body, json!({}));

    // Plain application/json requests work too.
    let reply = r
        .http
        .post(format!("{}/subjects/plain-json/versions", r.url))
        .json(&json!({"schema": "\"long\""}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    fixture.finish().await;
}

#[tokio::test]
async fn references_share_types_and_protect_what_they_reference() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let studio = json!({"type": "record", "name": "Studio", "namespace": "anineplus",
                        "fields": [{"name": "name", "type": "string"}]});
    let studio_id = r.register("anineplus.Studio", &studio).await;
    let with_studio = anime(
        json!([{"name": "id", "type": "string"}, {"name": "studio", "type": "anineplus.Studio"}]),
    );
    let references =
        json!([{"name": "anineplus.Studio", "subject": "anineplus.Studio", "version": 1}]);
    let reply = r
        .post(
            "/subjects/anime-value/versions",
            &json!({"schema": with_studio.to_string(), "references": references}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let anime_id = reply.body["id"].as_i64().unwrap();
    assert_ne!(anime_id, studio_id);

    let version = r.get("/subjects/anime-value/versions/1").await;
    assert_eq!(version.body["references"], references);
    assert_eq!(
        r.get(&format!("/schemas/ids/{anime_id}")).await.body["references"],
        references
    );
    assert_eq!(
        r.get("/subjects/anineplus.Studio/versions/1/referencedby")
            .await
            .body,
        json!([anime_id])
    );
    // A latest (-1) reference resolves to the concrete version, so it is the same schema.
    let latest_ref =
        json!([{"name": "anineplus.Studio", "subject": "anineplus.Studio", "version": -1}]);
    let again = r
        .post(
            "/subjects/anime-value/versions",
            &json!({"schema": with_studio.to_string(), "references": latest_ref}),
        )
        .await;
    assert_eq!(again.body, json!({"id": anime_id}));

    // The referenced version cannot go while a schema needs it.
    r.delete("/subjects/anineplus.Studio/versions/1")
        .await
        .assert_error(
            422,
            42206,
            &["subject=anineplus.Studio, version=1", &anime_id.to_string()],
        );
    r.delete("/subjects/anineplus.Studio")
        .await
        .assert_error(422, 42206, &["anineplus.Studio"]);
    // Once the referrer is only soft-deleted, a soft delete is allowed, a permanent one not.
    r.delete("/subjects/anime-value").await;
    assert_eq!(
        r.get("/subjects/anineplus.Studio/versions/1/referencedby")
            .await
            .body,
        json!([])
    );
    assert_eq!(
        r.delete("/subjects/anineplus.Studio").await.body,
        json!([1])
    );
    r.delete("/subjects/anineplus.Studio?permanent=true")
        .await
        .assert_error(422, 42206, &["anineplus.Studio"]);
    r.delete("/subjects/anime-value?permanent=true").await;
    assert_eq!(
        r.delete("/subjects/anineplus.Studio?permanent=true")
            .await
            .body,
        json!([1])
    );
    fixture.finish().await;
}

#[tokio::test]
async fn settings_are_read_set_and_deleted_globally_and_per_subject() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    r.register("s", &v1()).await;

    assert_eq!(
        r.get("/config/s?defaultToGlobal=true").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        r.put("/config/s", &json!({"compatibility": "full_transitive"}))
            .await
            .body,
        json!({"compatibility": "FULL_TRANSITIVE"})
    );
    assert_eq!(
        r.get("/config/s").await.body,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    assert_eq!(
        r.delete("/config/s").await.body,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    r.get("/config/s").await.assert_error(404, 40408, &["'s'"]);
    r.delete("/config/never-seen")
        .await
        .assert_error(404, 40401, &["'never-seen'"]);
    // A subject may get its level before its first schema.
    r.put("/config/future", &json!({"compatibility": "NONE"}))
        .await;
    assert_eq!(
        r.get("/config/future").await.body,
        json!({"compatibilityLevel": "NONE"})
    );

    r.put("/config", &json!({"compatibility": "FORWARD"})).await;
    assert_eq!(
        r.get("/config").await.body,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        r.get("/config/s?defaultToGlobal=true").await.body,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        r.delete("/config").await.body,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        r.get("/config").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );

    assert_eq!(
        r.put("/mode/s", &json!({"mode": "readonly"})).await.body,
        json!({"mode": "READONLY"})
    );
    assert_eq!(r.get("/mode/s").await.body, json!({"mode": "READONLY"}));
    assert_eq!(r.delete("/mode/s").await.body, json!({"mode": "READONLY"}));
    r.get("/mode/s").await.assert_error(404, 40409, &["'s'"]);
    assert_eq!(
        r.get("/mode/s?defaultToGlobal=true").await.body,
        json!({"mode": "READWRITE"})
    );
    fixture.finish().await;
}

#[tokio::test]
async fn import_mode_places_schemas_at_given_ids_and_versions() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let first = r.register("existing", &v1()).await;

    r.put("/mode", &json!({"mode": "IMPORT"}))
        .await
        .assert_error(422, 42205, &["existing subjects", "force=true"]);
    // Outside IMPORT mode, ids cannot be chosen.
    let other = anime(json!([{"name": "id", "type": "long"}]));
    r.post(
        "/subjects/imported/versions",
        &json!({"schema": other.to_string(), "id": 100}),
    )
    .await
    .assert_error(422, 42205, &["IMPORT mode"]);

    assert_eq!(
        r.put("/mode/imported", &json!({"mode": "IMPORT"}))
            .await
            .body,
        json!({"mode": "IMPORT"})
    );
    let reply = r
        .post(
            "/subjects/imported/versions",
            &json!({"schema": other.to_string(), "id": 100, "version": 5}),
        )
        .await;
    assert_eq!(reply.body, json!({"id": 100}), "{reply:?}");
    let version = r.get("/subjects/imported/versions/5").await;
    assert_eq!(version.body["id"], json!(100));

    // The schema has id 100 now; another id for it is refused, and so is id 100 for another.
    r.post(
        "/subjects/imported/versions",
        &json!({"schema": other.to_string(), "id": 101, "version": 6}),
    )
    .await
    .assert_error(
        422,
        42207,
        &["already registered with id 100", "input id 101"],
    );
    let third = anime(json!([{"name": "id", "type": "bytes"}]));
    r.post(
        "/subjects/imported/versions",
        &json!({"schema": third.to_string(), "id": first, "version": 6}),
    )
    .await
    .assert_error(422, 42205, &[&format!("id {first}")]);
    // IMPORT skips compatibility checks (bytes after long would be refused otherwise).
    let reply = r
        .post(
            "/subjects/imported/versions",
            &json!({"schema": third.to_string(), "id": 7, "version": 6}),
        )
        .await;
    assert_eq!(reply.body, json!({"id": 7}), "{reply:?}");

    // Back to READWRITE: new ids continue after the largest imported one.
    r.put("/mode/imported", &json!({"mode": "READWRITE"})).await;
    let next = r
        .register("later", &anime(json!([{"name": "x", "type": "int"}])))
        .await;
    assert!(next > 100, "id {next} could collide with imported ids");
    assert_eq!(
        r.get("/subjects/imported/versions").await.body,
        json!([5, 6])
    );
    fixture.finish().await;
}
