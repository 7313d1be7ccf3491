//! The codec against the real schema registry started by `make up`.

use anineplus_schemas::codec::DecodeError;
use anineplus_schemas::events::{AnimeData, samples};
use anineplus_schemas::registry_client::{RegistryClient, RegistryError};
use anineplus_schemas::{Codec, Envelope, Topic, wire};
use anineplus_testkit::{Stack, registry_url_as, unique};

async fn registry() -> String {
    Stack::from_env()
        .registry()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn encodes_through_the_registry_and_decodes_back() {
    let codec = Codec::new(&registry().await);
    let event = samples::anime_updated(42);
    let framed = codec.encode(&event).await.unwrap();
    let (id, _) = wire::split(&framed).unwrap();
    assert_eq!(framed[0], 0);
    // The id is the one the registry holds for the anime subject's current schema.
    let id_again = codec
        .registry()
        .register("anime-value", Topic::Anime.schema())
        .await
        .unwrap();
    assert_eq!(id, id_again);

    // A fresh codec (another process) fetches the writer schema by id, once.
    let reader = Codec::new(codec.registry().url());
    assert!(!reader.has_decoder(id, Topic::Anime));
    let decoded: Envelope<AnimeData> = reader.decode(&framed).await.unwrap();
    assert_eq!(decoded, event);
    assert!(reader.has_decoder(id, Topic::Anime));
    let again: Envelope<AnimeData> = reader.decode_prepared(&framed).unwrap();
    assert_eq!(again, event);
}

#[tokio::test]
async fn an_older_writer_schema_is_resolved_through_the_registry() {
    let url = registry().await;
    let client = RegistryClient::new(&url);
    // An older anime schema without the optional envelope fields, under its own subject.
    let mut json: serde_json::Value = serde_json::from_str(Topic::Anime.schema()).unwrap();
    json["fields"].as_array_mut().unwrap().retain(|f| {
        !["correlationId", "causationId", "version"].contains(&f["name"].as_str().unwrap())
    });
    let old_id = client
        .register(&unique("evolution-value"), &json.to_string())
        .await
        .unwrap();

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OldEnvelope {
        event_id: String,
        event_type: String,
        timestamp: i64,
        source: String,
        aggregate_id: String,
        aggregate_version: i64,
        data: AnimeData,
    }
    let event = samples::anime_updated(7);
    let writer = apache_avro::Schema::parse_str(&json.to_string()).unwrap();
    let names = apache_avro::schema::ResolvedSchema::try_from(&writer).unwrap();
    let mut framed = Vec::new();
    wire::write_header(old_id, &mut framed);
    let old = OldEnvelope {
        event_id: event.event_id.clone(),
        event_type: event.event_type.clone(),
        timestamp: event.timestamp,
        source: event.source.clone(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: event.aggregate_version,
        data: event.data.clone(),
    };
    apache_avro::write_avro_datum_ref(&writer, names.get_names(), &old, &mut framed).unwrap();

    let decoded: Envelope<AnimeData> = Codec::new(&url).decode(&framed).await.unwrap();
    assert_eq!(decoded.data, event.data);
    assert_eq!(decoded.version, 1, "default filled in");
    assert_eq!(decoded.correlation_id, None);
}

#[tokio::test]
async fn permanent_failures_are_classified_and_named() {
    let codec = Codec::new(&registry().await);
    // Not the wire format.
    let err = codec
        .decode::<Envelope<AnimeData>>(b"{\"json\":true}")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::Wire(_)) && !err.is_retryable(),
        "{err}"
    );
    // An id the registry never issued.
    let mut framed = Vec::new();
    wire::write_header(2_000_000_000, &mut framed);
    framed.extend_from_slice(b"\x02ab");
    let err = codec
        .decode::<Envelope<AnimeData>>(&framed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownSchemaId(2_000_000_000)) && !err.is_retryable(),
        "{err}"
    );
    // A known id with a corrupt body.
    let good = codec.encode(&samples::anime_updated(1)).await.unwrap();
    let err = codec
        .decode::<Envelope<AnimeData>>(&good[..good.len() - 3])
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::Corrupt { .. }) && !err.is_retryable(),
        "{err}"
    );
    assert!(
        err.to_string().contains("corrupt Avro data at byte"),
        "{err}"
    );
    // The user topic's writer schema read as anime: refused as incompatible, with a path.
    let user_id = codec.register(Topic::User).await.unwrap();
    let mut framed = Vec::new();
    wire::write_header(user_id, &mut framed);
    let err = codec
        .decode::<Envelope<AnimeData>>(&framed)
        .await
        .unwrap_err();
    assert!(matches!(err, DecodeError::Incompatible { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_registry_is_retryable() {
    let codec = Codec::new("http://127.0.0.1:1");
    let mut framed = Vec::new();
    wire::write_header(1, &mut framed);
    let err = codec
        .decode::<Envelope<AnimeData>>(&framed)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn the_registry_refuses_an_incompatible_change_with_the_field() {
    let client = RegistryClient::new(&registry().await);
    let subject = unique("incompatible-value");
    client
        .register(&subject, Topic::Anime.schema())
        .await
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(Topic::Anime.schema()).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tenantId", "type": "string"}));
    let err = client
        .register(&subject, &json.to_string())
        .await
        .unwrap_err();
    match err {
        RegistryError::Rejected { code: 409, message } => {
            assert!(message.contains("tenantId"), "{message}")
        }
        other => panic!("expected a 409, got {other}"),
    }
    let messages = client
        .check_compatibility(&subject, &json.to_string())
        .await
        .unwrap();
    assert!(
        messages.iter().any(|m| m.contains("tenantId")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_client_allowed_only_to_read_encodes_for_a_subject_make_up_registered() {
    registry().await;
    // `make up` registers every topic's schema; the pipelines (and the log shipping of
    // every service) then encode as users who may only read subjects: they look the id
    // up instead of registering.
    let url = registry_url_as("tools").expect("make up generated the tools user");
    let codec = Codec::new(&url);
    let framed = codec
        .encode(&samples::one_of_each().logs[0])
        .await
        .unwrap_or_else(|e| panic!("a read-only client encodes: {e}"));
    let (id, _) = wire::split(&framed).unwrap();
    let admin = Codec::new(&registry().await);
    assert_eq!(id, admin.register(Topic::Logs).await.unwrap());
}
