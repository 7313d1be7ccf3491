//! The decoder against the generic `apache-avro` path, and Avro's resolution rules.

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::events::samples;
use crate::events::*;

/// Encodes with apache-avro, decodes with ours and with the generic path: all three agree.
fn round_trip<T: TopicValue + PartialEq + std::fmt::Debug>(value: &T) {
    let framed = encode_with_id(7, value).unwrap();
    let (id, body) = wire::split(&framed).unwrap();
    assert_eq!(id, 7);
    let schema = reader_schema(T::TOPIC);
    let ours: T = Decoder::identity(schema).unwrap().decode(body).unwrap();
    assert_eq!(&ours, value);
    // No reader schema for the generic path: its resolution matches union branches by shape
    // and would read `OrganizationMemberRemoved` as `OrganizationMemberAdded` (whose extra
    // field has a default). Ours matches branches by name, as the Avro spec says.
    #[allow(deprecated)]
    let generic = apache_avro::from_avro_datum(schema, &mut &body[..], None).unwrap();
    let generic: T = apache_avro::from_value(&generic).unwrap();
    assert_eq!(&generic, value);
}

#[test]
fn every_payload_of_every_topic_round_trips() {
    let all = samples::one_of_each();
    all.users.iter().for_each(round_trip);
    all.organizations.iter().for_each(round_trip);
    all.anime.iter().for_each(round_trip);
    all.episodes.iter().for_each(round_trip);
    all.comments.iter().for_each(round_trip);
    all.subscriptions.iter().for_each(round_trip);
    all.logs.iter().for_each(round_trip);
    all.alerts.iter().for_each(round_trip);
    all.stats.iter().for_each(round_trip);
}

#[test]
fn event_types_match_the_union_branches() {
    let all = samples::one_of_each();
    let types = all
        .users
        .iter()
        .map(|e| (e.event_type.as_str(), e.data.event_type()))
        .chain(
            all.organizations
                .iter()
                .map(|e| (e.event_type.as_str(), e.data.event_type())),
        )
        .chain(
            all.anime
                .iter()
                .map(|e| (e.event_type.as_str(), e.data.event_type())),
        )
        .chain(
            all.episodes
                .iter()
                .map(|e| (e.event_type.as_str(), e.data.event_type())),
        )
        .chain(
            all.comments
                .iter()
                .map(|e| (e.event_type.as_str(), e.data.event_type())),
        )
        .chain(
            all.subscriptions
                .iter()
                .map(|e| (e.event_type.as_str(), e.data.event_type())),
        );
    for (envelope, data) in types {
        assert_eq!(envelope, data);
    }
}

fn schema(json: &str) -> Schema {
    Schema::parse_str(json).unwrap()
}

fn encode(schema: &Schema, value: apache_avro::types::Value) -> Vec<u8> {
    #[allow(deprecated)]
    apache_avro::to_avro_datum(schema, value).unwrap()
}

#[derive(Debug, PartialEq, Deserialize, Serialize)]
struct V2 {
    id: String,
    count: i64,
    ratio: f64,
    label: Option<String>,
    tags: Vec<String>,
    kind: Kind,
    extra: i32,
}

#[derive(Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Kind {
    A,
    B,
    Unknown,
}

const READER: &str = r#"{"type":"record","name":"R","fields":[
    {"name":"id","type":"string"},
    {"name":"count","type":"long"},
    {"name":"ratio","type":"double"},
    {"name":"label","type":["null","string"],"default":null},
    {"name":"tags","type":{"type":"array","items":"string"},"default":["x"]},
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","UNKNOWN"],"default":"UNKNOWN"}},
    {"name":"extra","type":"int","default":42}
]}"#;

#[test]
fn resolves_promotions_skips_removed_fields_and_fills_defaults() {
    use apache_avro::types::Value;
    // An older writer: int count, float ratio, bytes id, a field the reader dropped, an
    // enum symbol the reader lacks, and no label/tags/extra.
    let writer = schema(
        r#"{"type":"record","name":"R","fields":[
        {"name":"id","type":"bytes"},
        {"name":"dropped","type":{"type":"map","values":["null","long"]}},
        {"name":"count","type":"int"},
        {"name":"ratio","type":"float"},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","C"]}}
    ]}"#,
    );
    let body = encode(
        &writer,
        Value::Record(vec![
            ("id".into(), Value::Bytes(b"a-1".to_vec())),
            (
                "dropped".into(),
                Value::Map([("k".to_owned(), Value::Union(1, Box::new(Value::Long(9))))].into()),
            ),
            ("count".into(), Value::Int(-3)),
            ("ratio".into(), Value::Float(0.5)),
            ("kind".into(), Value::Enum(1, "C".into())),
        ]),
    );
    let decoder = Decoder::new(&writer, &schema(READER)).unwrap();
    let value: V2 = decoder.decode(&body).unwrap();
    assert_eq!(
        value,
        V2 {
            id: "a-1".into(),
            count: -3,
            ratio: 0.5,
            label: None,
            tags: vec!["x".into()],
            kind: Kind::Unknown,
            extra: 42
        }
    );
}

#[test]
fn a_missing_field_without_default_is_refused_with_its_path() {
    let writer = schema(r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"}]}"#);
    let reader = schema(
        r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"n","type":"int"}]}"#,
    );
    let err = Decoder::new(&writer, &reader).unwrap_err();
    assert_eq!(err.path, "R.n");
    assert!(err.reason.contains("no default"), "{err}");
}

#[test]
fn fields_and_records_are_matched_through_aliases() {
    use apache_avro::types::Value;
    let writer =
        schema(r#"{"type":"record","name":"Old","fields":[{"name":"name","type":"string"}]}"#);
    let reader = schema(
        r#"{"type":"record","name":"New","aliases":["Old"],"fields":[{"name":"title","aliases":["name"],"type":"string"}]}"#,
    );
    #[derive(Deserialize, Debug, PartialEq)]
    struct New {
        title: String,
    }
    let body = encode(
        &writer,
        Value::Record(vec![("name".into(), Value::String("x".into()))]),
    );
    let value: New = Decoder::new(&writer, &reader)
        .unwrap()
        .decode(&body)
        .unwrap();
    assert_eq!(value, New { title: "x".into() });
}

#[test]
fn union_branches_map_by_name_whatever_their_order() {
    use apache_avro::types::Value;
    #[derive(Deserialize, Debug, PartialEq)]
    enum Data {
        A(Inner),
        B(Inner),
    }
    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        n: i64,
    }
    let writer = schema(
        r#"[{"type":"record","name":"B","fields":[{"name":"n","type":"int"}]},
            {"type":"record","name":"A","fields":[{"name":"n","type":"int"}]}]"#,
    );
    let reader = schema(
        r#"[{"type":"record","name":"A","fields":[{"name":"n","type":"long"}]},
            {"type":"record","name":"B","fields":[{"name":"n","type":"long"}]},
            {"type":"record","name":"C","fields":[]}]"#,
    );
    let body = encode(
        &writer,
        Value::Union(
            0,
            Box::new(Value::Record(vec![("n".into(), Value::Int(5))])),
        ),
    );
    let value: Data = Decoder::new(&writer, &reader)
        .unwrap()
        .decode(&body)
        .unwrap();
    assert_eq!(value, Data::B(Inner { n: 5 }));
}

#[test]
fn a_writer_branch_unknown_to_the_reader_fails_only_when_it_occurs() {
    use apache_avro::types::Value;
    let writer = schema(r#"["null","string","long"]"#);
    let reader = schema(r#"["null","string"]"#);
    let decoder = Decoder::new(&writer, &reader).unwrap();
    let ok: Option<String> = decoder
        .decode(&encode(
            &writer,
            Value::Union(1, Box::new(Value::String("s".into()))),
        ))
        .unwrap();
    assert_eq!(ok.as_deref(), Some("s"));
    let err = decoder
        .decode::<Option<String>>(&encode(&writer, Value::Union(2, Box::new(Value::Long(1)))))
        .unwrap_err();
    assert!(err.reason.contains("matches no branch"), "{err}");
}

#[test]
fn incompatible_types_are_refused_at_compile_time() {
    let err = Decoder::new(&schema(r#""string""#), &schema(r#""long""#)).unwrap_err();
    assert!(
        err.reason.contains("string cannot be read as long"),
        "{err}"
    );
    let err = Decoder::new(
        &schema(r#"{"type":"fixed","name":"F","size":4}"#),
        &schema(r#"{"type":"fixed","name":"F","size":8}"#),
    )
    .unwrap_err();
    assert!(err.reason.contains("size 4"), "{err}");
}

#[test]
fn corrupt_bodies_fail_with_an_offset_never_a_panic() {
    let value = samples::anime_updated(1);
    let framed = encode_with_id(1, &value).unwrap();
    let body = &framed[wire::HEADER_LEN..];
    let decoder = Decoder::identity(reader_schema(Topic::Anime)).unwrap();
    // Every truncation fails cleanly.
    for len in 0..body.len() {
        assert!(
            decoder.decode::<Envelope<AnimeData>>(&body[..len]).is_err(),
            "truncated at {len}"
        );
    }
    // Trailing bytes are refused.
    let mut long = body.to_vec();
    long.push(0);
    let err = decoder.decode::<Envelope<AnimeData>>(&long).unwrap_err();
    assert!(err.reason.contains("1 bytes left"), "{err}");
    // Random garbage never panics.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        let garbage: Vec<u8> = (0..64)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = decoder.decode::<Envelope<AnimeData>>(&garbage);
    }
}

#[test]
fn envelope_decodes_from_an_older_writer_without_optional_fields() {
    // A writer schema of the anime topic lacking correlationId/causationId/version: the
    // reader's defaults fill them.
    let mut json: serde_json::Value = serde_json::from_str(Topic::Anime.schema()).unwrap();
    let fields = json["fields"].as_array_mut().unwrap();
    fields.retain(|f| {
        !["correlationId", "causationId", "version"].contains(&f["name"].as_str().unwrap())
    });
    let writer = Schema::parse_str(&json.to_string()).unwrap();
    #[derive(Serialize)]
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
    let full = samples::anime_updated(2);
    let old = OldEnvelope {
        event_id: full.event_id.clone(),
        event_type: full.event_type.clone(),
        timestamp: full.timestamp,
        source: full.source.clone(),
        aggregate_id: full.aggregate_id.clone(),
        aggregate_version: full.aggregate_version,
        data: full.data.clone(),
    };
    let names = apache_avro::schema::ResolvedSchema::try_from(&writer).unwrap();
    let mut body = Vec::new();
    apache_avro::write_avro_datum_ref(&writer, names.get_names(), &old, &mut body).unwrap();
    let decoded: Envelope<AnimeData> = Decoder::new(&writer, reader_schema(Topic::Anime))
        .unwrap()
        .decode(&body)
        .unwrap();
    assert_eq!(decoded.version, 1);
    assert_eq!(decoded.correlation_id, None);
    assert_eq!(decoded.data, full.data);
}

/// `anime.v1` data (no `alternativeTitles`) read with the current schema: the default `[]`;
/// current data (alternative titles) read by a `anime.v1` reader: the new field skipped.
#[test]
fn alternative_titles_evolve_both_ways_against_anime_v1() {
    let v1 = Schema::parse_str(include_str!("../../avro/released/anime.v1.avsc")).unwrap();
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct V1State {
        anime_id: String,
        title: String,
        synopsis: Option<String>,
        genres: Vec<String>,
        status: AnimeStatus,
        release_year: Option<i32>,
    }
    #[derive(Serialize)]
    enum V1Data {
        #[allow(dead_code)]
        AnimeCreated(V1State),
        AnimeUpdated(V1State),
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct V1Envelope {
        event_id: String,
        event_type: String,
        timestamp: i64,
        source: String,
        version: i32,
        correlation_id: Option<String>,
        causation_id: Option<String>,
        aggregate_id: String,
        aggregate_version: i64,
        data: V1Data,
    }
    let current = samples::anime_updated(3);
    let AnimeData::AnimeUpdated(state) = current.data.clone() else {
        panic!("an update")
    };
    assert!(!state.alternative_titles.is_empty());
    let old = V1Envelope {
        event_id: current.event_id.clone(),
        event_type: current.event_type.clone(),
        timestamp: current.timestamp,
        source: current.source.clone(),
        version: current.version,
        correlation_id: current.correlation_id.clone(),
        causation_id: None,
        aggregate_id: current.aggregate_id.clone(),
        aggregate_version: current.aggregate_version,
        data: V1Data::AnimeUpdated(V1State {
            anime_id: state.anime_id.clone(),
            title: state.title.clone(),
            synopsis: state.synopsis.clone(),
            genres: state.genres.clone(),
            status: state.status,
            release_year: state.release_year,
        }),
    };
    let names = apache_avro::schema::ResolvedSchema::try_from(&v1).unwrap();
    let mut body = Vec::new();
    apache_avro::write_avro_datum_ref(&v1, names.get_names(), &old, &mut body).unwrap();
    let decoded: Envelope<AnimeData> = Decoder::new(&v1, reader_schema(Topic::Anime))
        .unwrap()
        .decode(&body)
        .unwrap();
    let expected = AnimeState {
        alternative_titles: vec![],
        ..state.clone()
    };
    assert_eq!(decoded.data, AnimeData::AnimeUpdated(expected));

    // Forward: a consumer still on anime.v1 reads current data, ignoring the new field.
    let framed = encode_with_id(9, &current).unwrap();
    let (_, body) = wire::split(&framed).unwrap();
    let writer = reader_schema(Topic::Anime);
    #[allow(deprecated)]
    let generic = apache_avro::from_avro_datum(writer, &mut &body[..], Some(&v1)).unwrap();
    let generic = format!("{generic:?}");
    assert!(generic.contains(&state.title), "{generic}");
    assert!(!generic.contains("alternativeTitles"), "{generic}");
}
