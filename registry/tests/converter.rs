//! A real Confluent client, the `schema_registry_converter` crate, against the registry:
//! it registers schemas (TopicNameStrategy, with and without references), encodes records in
//! Confluent's wire format, and decodes them back by fetching the schema by id.

mod common;

use apache_avro::types::Value as Avro;
use common::Fixture;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedReference, SuppliedSchema,
};
use serde_json::json;

fn anime_schema(studio_inline: bool) -> String {
    let studio = if studio_inline {
        json!({"type": "record", "name": "Studio", "fields": [{"name": "name", "type": "string"}]})
    } else {
        // The client inlines references spelled by the unqualified name (same namespace) or
        // by `.namespace.Name`, not `namespace.Name`.
        json!("Studio")
    };
    json!({
        "type": "record",
        "name": "Anime",
        "namespace": "anineplus",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "title", "type": "string"},
            {"name": "episodes", "type": "int"},
            {"name": "studio", "type": studio},
        ]
    })
    .to_string()
}

fn record(title: &str) -> Vec<(&'static str, Avro)> {
    vec![
        ("id", Avro::String("anime-1".into())),
        ("title", Avro::String(title.into())),
        ("episodes", Avro::Int(28)),
        (
            "studio",
            Avro::Record(vec![("name".into(), Avro::String("Madhouse".into()))]),
        ),
    ]
}

fn fields(value: &Avro) -> Vec<(String, Avro)> {
    match value {
        Avro::Record(fields) => fields.clone(),
        other => panic!("not a record: {other:?}"),
    }
}

#[tokio::test]
async fn confluent_client_encodes_and_decodes_through_the_registry() {
    let fixture = Fixture::start().await;
    let settings = SrSettings::new_builder(fixture.registry.url.clone())
        .set_basic_authorization(common::ADMIN.0, Some(common::ADMIN.1))
        .build()
        .unwrap();
    let encoder = AvroEncoder::new(settings.clone());
    let decoder = AvroDecoder::new(settings);
    let topic = anineplus_testkit::unique("anime");

    // Registers the schema under `<topic>-value`, then encodes.
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        SuppliedSchema::new(
            Some("anineplus.Anime".into()),
            SchemaType::Avro,
            anime_schema(true),
        ),
    );
    let bytes = encoder
        .encode(record("Frieren: Beyond Journey's End"), strategy)
        .await
        .expect("encode with registration");
    let id = fixture
        .registry
        .get(&format!("/subjects/{topic}-value/versions/latest"))
        .await
        .body["id"]
        .as_i64()
        .expect("the subject's latest version");
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(&bytes[1..5], &(id as u32).to_be_bytes(), "schema id");

    let decoded = decoder.decode(Some(&bytes)).await.expect("decode");
    let decoded = fields(&decoded.value);
    assert_eq!(
        decoded[1],
        (
            "title".into(),
            Avro::String("Frieren: Beyond Journey's End".into())
        )
    );
    assert_eq!(decoded[2], ("episodes".into(), Avro::Int(28)));

    // The plain TopicNameStrategy uses the latest registered version of `<topic>-value`.
    let latest = encoder
        .encode(
            record("Monster"),
            SubjectNameStrategy::TopicNameStrategy(topic.clone(), false),
        )
        .await
        .expect("encode with the latest schema");
    assert_eq!(&latest[..5], &bytes[..5]);
    let decoded = fields(&decoder.decode(Some(&latest)).await.unwrap().value);
    assert_eq!(decoded[1], ("title".into(), Avro::String("Monster".into())));

    fixture.finish().await;
}

#[tokio::test]
async fn confluent_client_registers_references_to_shared_types() {
    let fixture = Fixture::start().await;
    let settings = SrSettings::new_builder(fixture.registry.url.clone())
        .set_basic_authorization(common::ADMIN.0, Some(common::ADMIN.1))
        .build()
        .unwrap();
    let encoder = AvroEncoder::new(settings.clone());
    let decoder = AvroDecoder::new(settings);
    let topic = anineplus_testkit::unique("anime");
    let studio_subject = anineplus_testkit::unique("anineplus.Studio");

    let studio = json!({"type": "record", "name": "Studio", "namespace": "anineplus",
                        "fields": [{"name": "name", "type": "string"}]})
    .to_string();
    let supplied = SuppliedSchema::new(
        Some("anineplus.Anime".into()),
        SchemaType::Avro,
        anime_schema(false),
    )
    .with_references(vec![SuppliedReference::new(
        "anineplus.Studio".into(),
        studio_subject.clone(),
        studio,
    )]);
    let bytes = encoder
        .encode(
            record("Pluto"),
            SubjectNameStrategy::TopicNameStrategyWithSchema(topic.clone(), false, supplied),
        )
        .await
        .expect("encode with a referenced type");
    let decoded = fields(&decoder.decode(Some(&bytes)).await.expect("decode").value);
    assert_eq!(decoded[1], ("title".into(), Avro::String("Pluto".into())));

    // The registry knows who references the shared type.
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as i64;
    let referenced_by = fixture
        .registry
        .get(&format!(
            "/subjects/{studio_subject}/versions/1/referencedby"
        ))
        .await;
    assert_eq!(referenced_by.body, json!([id]), "{referenced_by:?}");
    let by_id = fixture.registry.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(
        by_id.body["references"],
        json!([{"name": "anineplus.Studio", "subject": studio_subject, "version": 1}])
    );

    fixture.finish().await;
}
