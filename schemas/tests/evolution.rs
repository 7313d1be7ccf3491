//! Schema evolution: the current schema of every topic must read data written with every
//! released version (`avro/released/<topic>.vN.avsc`), i.e. be BACKWARD_TRANSITIVE
//! compatible. Checked twice: with the registry's own checker (the rules the registry
//! enforces at registration) and by compiling our decoder from each released writer schema.

use std::path::PathBuf;

use anineplus_registry::avro::AvroSchema;
use anineplus_registry::compat::{self, Compatibility};
use anineplus_schemas::Topic;
use anineplus_schemas::codec::{Decoder, reader_schema};

fn released(topic: Topic) -> Vec<(i32, String, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("avro/released");
    let mut versions: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            let version = name
                .strip_prefix(&format!("{}.v", topic.name()))?
                .strip_suffix(".avsc")?
                .parse()
                .ok()?;
            Some((version, std::fs::read_to_string(&path).unwrap(), path))
        })
        .collect();
    versions.sort_by_key(|(v, _, _)| *v);
    versions
}

#[test]
fn every_topic_has_a_released_version() {
    for topic in Topic::ALL {
        assert!(
            !released(topic).is_empty(),
            "no released schema for {topic} in avro/released/"
        );
    }
}

#[test]
fn current_schemas_are_backward_compatible_with_every_released_version() {
    let mut problems = Vec::new();
    for topic in Topic::ALL {
        let current = AvroSchema::parse(topic.schema(), &[]).unwrap();
        let versions = released(topic);
        let parsed: Vec<_> = versions
            .iter()
            .map(|(v, text, _)| (*v, AvroSchema::parse(text, &[]).unwrap()))
            .collect();
        let against: Vec<_> = parsed.iter().map(|(v, s)| (*v, s)).collect();
        for message in compat::check(Compatibility::BackwardTransitive, &current, &against) {
            problems.push(format!("{}: {message}", topic.subject()));
        }
        for (version, text, path) in &versions {
            let writer = apache_avro::Schema::parse_str(text).unwrap();
            if let Err(e) = Decoder::new(&writer, reader_schema(topic)) {
                problems.push(format!(
                    "{} v{version} ({}): our decoder: {e}",
                    topic.subject(),
                    path.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "schema changes break released versions:\n{}",
        problems.join("\n")
    );
}

/// The check above can fail: a field added without a default is caught, with its name.
#[test]
fn a_field_added_without_default_is_caught() {
    let mut json: serde_json::Value = serde_json::from_str(Topic::Anime.schema()).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tenantId", "type": "string"}));
    let changed = AvroSchema::parse(&json.to_string(), &[]).unwrap();
    let (version, text, _) = released(Topic::Anime).pop().unwrap();
    let old = AvroSchema::parse(&text, &[]).unwrap();
    let messages = compat::check(
        Compatibility::BackwardTransitive,
        &changed,
        &[(version, &old)],
    );
    assert!(
        messages.iter().any(|m| m.contains("tenantId")),
        "{messages:?}"
    );
    let err = Decoder::new(
        &apache_avro::Schema::parse_str(&text).unwrap(),
        &apache_avro::Schema::parse_str(&json.to_string()).unwrap(),
    )
    .unwrap_err();
    assert!(err.path.ends_with("tenantId"), "{err}");
}

/// Alternative titles (anime.v2) were added with a default, so the change is FULL: consumers
/// on anime.v1 read the new data too (a consumer can be upgraded after its producer).
#[test]
fn anime_v2_is_fully_compatible_with_anime_v1() {
    let versions = released(Topic::Anime);
    let parsed: Vec<_> = versions
        .iter()
        .map(|(v, text, _)| (*v, AvroSchema::parse(text, &[]).unwrap()))
        .collect();
    assert!(parsed.len() >= 2, "anime.v2 is released");
    let current = AvroSchema::parse(Topic::Anime.schema(), &[]).unwrap();
    let against: Vec<_> = parsed.iter().map(|(v, s)| (*v, s)).collect();
    let messages = compat::check(Compatibility::FullTransitive, &current, &against);
    assert!(messages.is_empty(), "{messages:?}");
    let (_, latest, _) = versions.last().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(latest).unwrap(),
        serde_json::from_str::<serde_json::Value>(Topic::Anime.schema()).unwrap(),
        "the current anime schema is its latest released version"
    );
}
