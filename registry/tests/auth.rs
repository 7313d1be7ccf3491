//! Who may write: through the real HTTP server, basic credentials as Confluent's clients send
//! them, per-subject permissions, 401 and 403 in Confluent's error format.
//!
//! Scenario (the defect): anyone who reached the registry could register, delete a subject
//! permanently or switch `/mode` to READONLY, stopping every producer. Here a registry with
//! four users (an admin, a read-only user, a producer limited to `anime-*`, a user with a
//! Karapace-style PBKDF2 hash) refuses every write that lacks the permission, and the
//! `schema_registry_converter` crate registers and decodes only with credentials.

mod common;

use common::{TestRegistry, access, anime, database};
use reqwest::Method;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{Value, json};

const READER: (&str, &str) = ("reader", "reader-password");
const PRODUCER: (&str, &str) = ("producer", "producer-password");
/// Password "hashed-password", salt "NaCl": PBKDF2-HMAC-SHA512, 5000 rounds, base64 (as
/// Karapace's `karapace_mkpasswd -a sha512 hashed-password NaCl` prints it).
const HASHED: (&str, &str) = ("hashed", "hashed-password");

fn users(hash: &str, anonymous_read: bool) -> std::sync::Arc<anineplus_registry::Access> {
    access(
        json!({
            "users": [
                {"username": common::ADMIN.0, "algorithm": "plain", "password": common::ADMIN.1},
                {"username": READER.0, "algorithm": "plain", "password": READER.1},
                {"username": PRODUCER.0, "algorithm": "plain", "password": PRODUCER.1},
                {"username": HASHED.0, "algorithm": "sha512", "salt": "NaCl", "password": hash},
            ],
            "permissions": [
                {"username": common::ADMIN.0, "operation": "Write", "resource": "Config:"},
                {"username": common::ADMIN.0, "operation": "Write", "resource": "Subject:*"},
                {"username": READER.0, "operation": "Read", "resource": "Subject:*"},
                {"username": PRODUCER.0, "operation": "Write", "resource": "Subject:anime-*"},
                {"username": HASHED.0, "operation": "Write", "resource": "Subject:hashed-?alue"},
            ]
        }),
        anonymous_read,
    )
}

/// The hash of [`HASHED`]'s password, as Python computes it:
/// `base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"hashed-password", b"NaCl", 5000))`.
const HASHED_HASH: &str =
    "rlG6pNeZtSGcLg1lw0JbZ+rFJGLPJ0lKC6J+RsyzI5xeIFsjSuMlIEJIIx5k1Vrgyg994C6eA0AoBO+zvN7m4w==";

fn schema() -> Value {
    json!({ "schema": anime(json!([{"name": "id", "type": "string"}])).to_string() })
}

#[tokio::test]
async fn writes_need_credentials_and_the_permission_for_the_subject() {
    let db = database().await;
    let r = TestRegistry::start_with(&db.url, users(HASHED_HASH, false)).await;
    let register = |subject: &str| format!("/subjects/{subject}/versions");

    // No credentials: 401 with a challenge, for writes and (reads closed) reads.
    let reply = r
        .call_as(
            None,
            Method::POST,
            &register("anime-value"),
            Some(&schema()),
        )
        .await;
    reply.assert_error(401, 40101, &["credentials"]);
    for (method, path, body) in [
        (Method::PUT, "/mode", Some(json!({"mode": "READONLY"}))),
        (Method::DELETE, "/subjects/anime-value?permanent=true", None),
        (
            Method::PUT,
            "/config",
            Some(json!({"compatibility": "NONE"})),
        ),
        (Method::GET, "/subjects", None),
    ] {
        r.call_as(None, method.clone(), path, body.as_ref())
            .await
            .assert_error(401, 40101, &[]);
    }
    let challenge = r
        .plain_http
        .delete(format!("{}/subjects/anime-value", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 401);
    assert!(
        challenge.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "),
        "{:?}",
        challenge.headers()
    );
    // Health probes stay open.
    assert_eq!(
        r.call_as(None, Method::GET, "/schemas/types", None)
            .await
            .status,
        200
    );

    // A wrong password, an unknown user: 401.
    r.call_as(
        Some((PRODUCER.0, "wrong")),
        Method::POST,
        &register("anime-value"),
        Some(&schema()),
    )
    .await
    .assert_error(401, 40101, &["not valid"]);
    r.call_as(Some(("nobody", "x")), Method::GET, "/subjects", None)
        .await
        .assert_error(401, 40101, &[]);

    // A read-only user: reads yes, writes 403.
    r.call_as(
        Some(READER),
        Method::POST,
        &register("anime-value"),
        Some(&schema()),
    )
    .await
    .assert_error(403, 40301, &["'reader'", "Write", "'anime-value'"]);
    r.call_as(
        Some(READER),
        Method::PUT,
        "/mode",
        Some(&json!({"mode": "READONLY"})),
    )
    .await
    .assert_error(403, 40301, &["global config"]);

    // The producer writes its own subjects, not others, nor the global settings.
    let own = r
        .call_as(
            Some(PRODUCER),
            Method::POST,
            &register("anime-value"),
            Some(&schema()),
        )
        .await;
    assert_eq!(own.status, 200, "{own:?}");
    let id = own.body["id"].as_i64().unwrap();
    r.call_as(
        Some(PRODUCER),
        Method::POST,
        &register("user-value"),
        Some(&schema()),
    )
    .await
    .assert_error(403, 40301, &["'producer'", "'user-value'"]);
    r.call_as(
        Some(PRODUCER),
        Method::PUT,
        "/config",
        Some(&json!({"compatibility": "NONE"})),
    )
    .await
    .assert_error(403, 40301, &[]);
    r.call_as(
        Some(PRODUCER),
        Method::PUT,
        "/mode/user-value",
        Some(&json!({"mode": "READONLY"})),
    )
    .await
    .assert_error(403, 40301, &[]);
    r.call_as(Some(READER), Method::DELETE, "/subjects/anime-value", None)
        .await
        .assert_error(403, 40301, &[]);
    assert_eq!(
        r.call_as(
            Some(PRODUCER),
            Method::PUT,
            "/config/anime-value",
            Some(&json!({"compatibility": "FULL"}))
        )
        .await
        .status,
        200
    );

    // Reads are filtered to what the caller may read.
    r.register(
        "user-value",
        &anime(json!([{"name": "uid", "type": "long"}])),
    )
    .await;
    let user_id = r.get("/subjects/user-value/versions/latest").await.body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        r.call_as(Some(PRODUCER), Method::GET, "/subjects", None)
            .await
            .body,
        json!(["anime-value"])
    );
    assert_eq!(
        r.call_as(Some(READER), Method::GET, "/subjects", None)
            .await
            .body,
        json!(["anime-value", "user-value"])
    );
    assert_eq!(
        r.call_as(
            Some(PRODUCER),
            Method::GET,
            &format!("/schemas/ids/{id}"),
            None
        )
        .await
        .status,
        200
    );
    r.call_as(
        Some(PRODUCER),
        Method::GET,
        &format!("/schemas/ids/{user_id}"),
        None,
    )
    .await
    .assert_error(403, 40301, &["'user-value'"]);

    // A PBKDF2-hashed password (Karapace's format), and its glob.
    let hashed = r
        .call_as(
            Some(HASHED),
            Method::POST,
            &register("hashed-value"),
            Some(&schema()),
        )
        .await;
    assert_eq!(hashed.status, 200, "{hashed:?}");
    r.call_as(
        Some((HASHED.0, "hashed-passwordX")),
        Method::GET,
        "/subjects",
        None,
    )
    .await
    .assert_error(401, 40101, &[]);

    // The admin may do anything; the refused requests changed nothing.
    assert_eq!(
        r.put("/mode", &json!({"mode": "READWRITE"})).await.status,
        200
    );
    assert_eq!(r.get("/mode").await.body, json!({"mode": "READWRITE"}));
    assert_eq!(
        r.get("/config").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    r.stop().await;
    db.remove().await;
}

#[tokio::test]
async fn anonymous_reads_may_be_opened_and_writes_never() {
    let db = database().await;
    let r = TestRegistry::start_with(&db.url, users(HASHED_HASH, true)).await;
    r.register(
        "anime-value",
        &anime(json!([{"name": "id", "type": "string"}])),
    )
    .await;
    for path in [
        "/subjects",
        "/subjects/anime-value/versions/latest",
        "/schemas/ids/1",
        "/config",
        "/mode",
    ] {
        let reply = r.call_as(None, Method::GET, path, None).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
    let check = r
        .call_as(
            None,
            Method::POST,
            "/compatibility/subjects/anime-value/versions/latest",
            Some(&schema()),
        )
        .await;
    assert_eq!(check.body, json!({"is_compatible": true}));
    r.call_as(
        None,
        Method::POST,
        "/subjects/anime-value/versions",
        Some(&schema()),
    )
    .await
    .assert_error(401, 40101, &[]);
    r.call_as(None, Method::DELETE, "/subjects/anime-value", None)
        .await
        .assert_error(401, 40101, &[]);
    r.call_as(
        None,
        Method::PUT,
        "/mode",
        Some(&json!({"mode": "READONLY"})),
    )
    .await
    .assert_error(401, 40101, &[]);
    r.stop().await;
    db.remove().await;
}

#[tokio::test]
async fn the_server_refuses_to_start_without_users() {
    let db = database().await;
    let config = anineplus_registry::Config::for_database(db.url.clone());
    let err = anineplus_registry::run(config, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("REGISTRY_AUTH_FILE"), "{err}");
    db.remove().await;
}

#[tokio::test]
async fn confluent_clients_send_basic_credentials() {
    let db = database().await;
    let r = TestRegistry::start_with(&db.url, users(HASHED_HASH, false)).await;
    let topic = anineplus_testkit::unique("anime");
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        SuppliedSchema::new(
            Some("anineplus.Anime".into()),
            SchemaType::Avro,
            anime(json!([{"name": "id", "type": "string"}])).to_string(),
        ),
    );
    let value = vec![("id", apache_avro::types::Value::String("a-1".into()))];
    // Without credentials the encoder cannot register the schema.
    let anonymous = AvroEncoder::new(SrSettings::new(r.url.clone()));
    let refused = anonymous
        .encode(value.clone(), strategy.clone())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("401") || format!("{refused:?}").contains("40101"),
        "{refused:?}"
    );
    // With the producer's `basic.auth.user.info` it can (its subject starts with `anime`).
    let settings = SrSettings::new_builder(r.url.clone())
        .set_basic_authorization(PRODUCER.0, Some(PRODUCER.1))
        .build()
        .unwrap();
    let bytes = AvroEncoder::new(settings)
        .encode(value, strategy)
        .await
        .expect("encoded with credentials");
    // A reader decodes with its own.
    let reader = SrSettings::new_builder(r.url.clone())
        .set_basic_authorization(READER.0, Some(READER.1))
        .build()
        .unwrap();
    let decoded = AvroDecoder::new(reader)
        .decode(Some(&bytes))
        .await
        .expect("decoded");
    assert!(format!("{:?}", decoded.value).contains("a-1"));
    r.stop().await;
    db.remove().await;
}
