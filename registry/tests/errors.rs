//! Bad input gets Confluent's error body with the right status, code and a helpful message;
//! soft and permanent deletes follow Confluent's order; ids are never reused.

mod common;

use common::{Fixture, anime};
use reqwest::Method;
use serde_json::json;

fn v1() -> serde_json::Value {
    anime(json!([{"name": "id", "type": "string"}]))
}

fn v2() -> serde_json::Value {
    anime(
        json!([{"name": "id", "type": "string"}, {"name": "title", "type": "string", "default": ""}]),
    )
}

#[tokio::test]
async fn malformed_requests_are_422_or_415_with_a_json_body() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let path = "/subjects/bad-input/versions";
    let json_type = "application/vnd.schemaregistry.v1+json";

    let reply = r.raw(Method::POST, path, json_type, r#"{"schema": "#).await;
    reply.assert_error(422, 422, &["not the JSON this endpoint expects", "EOF"]);
    assert_eq!(reply.content_type, json_type);

    let reply = r
        .raw(Method::POST, path, "application/json", r#"{"schma": "x"}"#)
        .await;
    reply.assert_error(422, 422, &["missing field `schema`"]);

    let reply = r.raw(Method::POST, path, json_type, "").await;
    reply.assert_error(422, 422, &["no body"]);

    let reply = r
        .raw(
            Method::POST,
            path,
            "text/plain",
            r#"{"schema": "\"string\""}"#,
        )
        .await;
    reply.assert_error(
        415,
        415,
        &["text/plain", "application/vnd.schemaregistry.v1+json"],
    );

    let reply = r.raw(Method::PUT, "/config", json_type, "[1,2").await;
    reply.assert_error(422, 422, &["JSON"]);

    // Unknown routes and methods answer in the same format.
    let reply = r.get("/nowhere").await;
    reply.assert_error(404, 404, &["/nowhere"]);
    let reply = r.call(Method::PATCH, "/subjects", None).await;
    reply.assert_error(405, 405, &["Method Not Allowed"]);
    fixture.finish().await;
}

#[tokio::test]
async fn invalid_schemas_and_other_schema_types_are_42201() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let path = "/subjects/bad-schema/versions";

    let reply = r.post(path, &json!({"schema": "not json at all"})).await;
    reply.assert_error(422, 42201, &["Invalid schema", "not valid JSON"]);

    let no_fields = json!({"type": "record", "name": "Anime"}).to_string();
    let reply = r.post(path, &json!({"schema": no_fields})).await;
    reply.assert_error(422, 42201, &["Invalid schema", "fields"]);

    let unknown_type = anime(json!([{"name": "studio", "type": "anineplus.Studio"}]));
    let reply = r
        .post(path, &json!({"schema": unknown_type.to_string()}))
        .await;
    reply.assert_error(422, 42201, &["anineplus.Studio"]);

    let reply = r
        .post(
            path,
            &json!({"schema": "syntax = \"proto3\"; message A {}", "schemaType": "PROTOBUF"}),
        )
        .await;
    reply.assert_error(422, 42201, &["PROTOBUF", "only AVRO"]);

    let reply = r
        .post(
            path,
            &json!({"schema": v1().to_string(), "references": [{"name": "anineplus.Studio", "subject": "nope", "version": 1}]}),
        )
        .await;
    reply.assert_error(
        422,
        42201,
        &["reference 'anineplus.Studio'", "subject 'nope'"],
    );

    // schemaType AVRO is accepted; nothing above created the subject.
    let reply = r
        .post(
            path,
            &json!({"schema": v1().to_string(), "schemaType": "AVRO"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(r.get("/subjects").await.body, json!(["bad-schema"]));
    fixture.finish().await;
}

#[tokio::test]
async fn unknown_subjects_versions_and_schemas_are_404_with_their_codes() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let id = r.register("known", &v1()).await;

    r.get("/subjects/unknown/versions").await.assert_error(
        404,
        40401,
        &["Subject 'unknown' not found"],
    );
    r.get("/subjects/unknown/versions/1")
        .await
        .assert_error(404, 40401, &["'unknown'"]);
    r.get("/subjects/unknown/versions/latest")
        .await
        .assert_error(404, 40401, &["'unknown'"]);
    r.post("/subjects/unknown", &json!({"schema": v1().to_string()}))
        .await
        .assert_error(404, 40401, &["'unknown'"]);
    r.delete("/subjects/unknown")
        .await
        .assert_error(404, 40401, &["'unknown'"]);
    r.post(
        "/compatibility/subjects/unknown/versions/latest",
        &json!({"schema": v1().to_string()}),
    )
    .await
    .assert_error(404, 40401, &["'unknown'"]);

    r.get("/subjects/known/versions/7").await.assert_error(
        404,
        40402,
        &["Version 7 not found", "'known'"],
    );
    r.delete("/subjects/known/versions/7")
        .await
        .assert_error(404, 40402, &["Version 7"]);

    r.get("/schemas/ids/999999")
        .await
        .assert_error(404, 40403, &["Schema 999999 not found"]);
    r.get("/schemas/ids/abc")
        .await
        .assert_error(404, 40403, &["Schema abc not found"]);
    r.get(&format!("/schemas/ids/{id}?subject=other"))
        .await
        .assert_error(404, 40403, &["not found under subject 'other'"]);
    r.post("/subjects/known", &json!({"schema": v2().to_string()}))
        .await
        .assert_error(404, 40403, &["Schema not found under subject 'known'"]);
    r.get("/config/known")
        .await
        .assert_error(404, 40408, &["'known'", "defaultToGlobal"]);
    r.get("/mode/known")
        .await
        .assert_error(404, 40409, &["'known'"]);
    fixture.finish().await;
}

#[tokio::test]
async fn bad_versions_levels_and_modes_are_refused_with_their_codes() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    r.register("s", &v1()).await;

    for bad in ["abc", "0", "-5", "1.5", "99999999999"] {
        let words = [format!("'{bad}'"), "latest".to_owned()];
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        r.get(&format!("/subjects/s/versions/{bad}"))
            .await
            .assert_error(422, 42202, &words);
        r.delete(&format!("/subjects/s/versions/{bad}"))
            .await
            .assert_error(422, 42202, &words);
        r.post(
            &format!("/compatibility/subjects/s/versions/{bad}"),
            &json!({"schema": v1().to_string()}),
        )
        .await
        .assert_error(422, 42202, &words);
    }

    r.put("/config", &json!({"compatibility": "SIDEWAYS"}))
        .await
        .assert_error(422, 42203, &["'SIDEWAYS'", "BACKWARD_TRANSITIVE"]);
    r.put("/config/s", &json!({"compatibility": "MOSTLY"}))
        .await
        .assert_error(422, 42203, &["'MOSTLY'"]);
    r.put("/config", &json!({"level": "FULL"}))
        .await
        .assert_error(422, 422, &["\"compatibility\""]);
    r.put("/mode", &json!({"mode": "WRITEONLY"}))
        .await
        .assert_error(422, 42204, &["'WRITEONLY'", "READWRITE, READONLY, IMPORT"]);
    r.put("/mode/s", &json!({"mode": ""}))
        .await
        .assert_error(422, 42204, &["READONLY"]);

    // Nothing changed.
    assert_eq!(
        r.get("/config").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(r.get("/mode").await.body, json!({"mode": "READWRITE"}));
    fixture.finish().await;
}

#[tokio::test]
async fn readonly_mode_refuses_writes_with_42205() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    r.register("ro", &v1()).await;
    r.register("rw", &v1()).await;

    assert_eq!(
        r.put("/mode/ro", &json!({"mode": "READONLY"})).await.body,
        json!({"mode": "READONLY"})
    );
    r.register_reply("ro", &v2())
        .await
        .assert_error(422, 42205, &["'ro'", "read-only"]);
    r.delete("/subjects/ro/versions/1")
        .await
        .assert_error(422, 42205, &["read-only"]);
    r.delete("/subjects/ro")
        .await
        .assert_error(422, 42205, &["read-only"]);
    // Reads still work, and other subjects still take writes.
    assert_eq!(r.get("/subjects/ro/versions").await.body, json!([1]));
    r.register("rw", &v2()).await;

    // Globally READONLY: every subject without its own mode.
    r.put("/mode", &json!({"mode": "READONLY"})).await;
    r.register_reply("fresh", &v1())
        .await
        .assert_error(422, 42205, &["'fresh'"]);
    assert_eq!(
        r.get("/mode/fresh?defaultToGlobal=true").await.body,
        json!({"mode": "READONLY"})
    );
    // A subject's own mode wins over the global one.
    r.put("/mode/rw", &json!({"mode": "READWRITE"})).await;
    r.delete("/subjects/rw/versions/2").await;
    assert_eq!(
        r.delete("/mode/rw").await.body,
        json!({"mode": "READWRITE"})
    );
    r.delete("/subjects/rw/versions/1")
        .await
        .assert_error(422, 42205, &["read-only"]);
    fixture.finish().await;
}

#[tokio::test]
async fn deletes_follow_confluents_order_and_ids_are_never_reused() {
    let fixture = Fixture::start().await;
    let r = &fixture.registry;
    let id1 = r.register("del", &v1()).await;
    let id2 = r.register("del", &v2()).await;

    r.delete("/subjects/del?permanent=true").await.assert_error(
        404,
        40405,
        &["'del'", "not deleted first"],
    );
    r.delete("/subjects/del/versions/1?permanent=true")
        .await
        .assert_error(404, 40407, &["'del' Version 1", "not deleted first"]);

    assert_eq!(r.delete("/subjects/del/versions/1").await.body, json!(1));
    r.delete("/subjects/del/versions/1").await.assert_error(
        404,
        40406,
        &["'del' Version 1 was soft deleted", "permanent=true"],
    );
    r.get("/subjects/del/versions/1")
        .await
        .assert_error(404, 40402, &["Version 1"]);
    let soft = r.get("/subjects/del/versions/1?deleted=true").await;
    assert_eq!(soft.body["id"], json!(id1));
    assert_eq!(r.get("/subjects/del/versions").await.body, json!([2]));
    // The schema itself stays readable by id (consumers of old records need it).
    assert_eq!(r.get(&format!("/schemas/ids/{id1}")).await.status, 200);
    assert_eq!(
        r.get(&format!("/schemas/ids/{id1}/versions")).await.body,
        json!([])
    );
    assert_eq!(
        r.get(&format!("/schemas/ids/{id1}/versions?deleted=true"))
            .await
            .body,
        json!([{"subject": "del", "version": 1}])
    );

    assert_eq!(
        r.delete("/subjects/del/versions/1?permanent=true")
            .await
            .body,
        json!(1)
    );
    r.get("/subjects/del/versions/1?deleted=true")
        .await
        .assert_error(404, 40402, &["Version 1"]);

    assert_eq!(r.delete("/subjects/del").await.body, json!([2]));
    r.delete("/subjects/del")
        .await
        .assert_error(404, 40404, &["'del' was soft deleted"]);
    assert_eq!(r.get("/subjects").await.body, json!([]));
    assert_eq!(r.get("/subjects?deleted=true").await.body, json!(["del"]));
    r.get("/subjects/del/versions")
        .await
        .assert_error(404, 40401, &["'del'"]);
    assert_eq!(
        r.get("/subjects/del/versions?deleted=true").await.body,
        json!([2])
    );

    assert_eq!(
        r.delete("/subjects/del?permanent=true").await.body,
        json!([2])
    );
    assert_eq!(r.get("/subjects?deleted=true").await.body, json!([]));
    r.delete("/subjects/del?permanent=true")
        .await
        .assert_error(404, 40401, &["'del'"]);

    // A new schema gets a new id; an old schema keeps its id (ids name schemas, forever).
    let v3 = anime(json!([{"name": "id", "type": "long"}]));
    let id3 = r.register("del", &v3).await;
    assert!(id3 > id1.max(id2), "id {id3} reused");
    assert_eq!(r.get("/subjects/del/versions").await.body, json!([1]));
    assert_eq!(r.register("again", &v1()).await, id1);
    fixture.finish().await;
}
