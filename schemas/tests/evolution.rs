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
