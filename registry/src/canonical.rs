//! The registry's canonical form of a schema, which decides when two submissions are "the
//! same schema" (same id, same version).
//!
//! It is the schema's JSON with every object's keys sorted and no insignificant whitespace.
//! It deliberately is *not* Avro's Parsing Canonical Form: that form drops `default`, `doc`,
//! `aliases` and custom properties, so it would give one id to two schemas that differ in a
//! default, and a reader would then resolve data with the wrong default.

use serde_json::Value;

/// Re-serialises a schema's JSON text in canonical form. Fails only on invalid JSON.
pub fn canonical_json(text: &str) -> Result<String, serde_json::Error> {
    let value: Value = serde_json::from_str(text)?;
    Ok(canonical_value(&value))
}

/// The canonical text of an already parsed JSON value.
pub fn canonical_value(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map keeps insertion order when any crate of the
            // build enables its `preserve_order` feature.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_key_order_do_not_matter() {
        let a = r#"{"type": "record", "name": "Anime",
                    "fields": [{"name": "id", "type": "string"}]}"#;
        let b = r#"{"fields":[{"type":"string","name":"id"}],"name":"Anime","type":"record"}"#;
        assert_eq!(canonical_json(a).unwrap(), canonical_json(b).unwrap());
        assert_eq!(
            canonical_json(a).unwrap(),
            r#"{"fields":[{"name":"id","type":"string"}],"name":"Anime","type":"record"}"#
        );
    }

    #[test]
    fn field_order_and_defaults_do_matter() {
        let a = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}"#;
        let b = r#"{"type":"record","name":"A","fields":[{"name":"y","type":"int"},{"name":"x","type":"int"}]}"#;
        assert_ne!(canonical_json(a).unwrap(), canonical_json(b).unwrap());
        let c = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":1}]}"#;
        let d = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":2}]}"#;
        assert_ne!(canonical_json(c).unwrap(), canonical_json(d).unwrap());
    }

    #[test]
    fn strings_are_escaped_and_primitives_kept() {
        assert_eq!(canonical_json(" \"string\" ").unwrap(), "\"string\"");
        assert_eq!(
            canonical_json(r#"{"doc": "a \"quoted\" é\n", "type": "string"}"#).unwrap(),
            r#"{"doc":"a \"quoted\" é\n","type":"string"}"#
        );
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(canonical_json("{\"type\": ").is_err());
    }
}
