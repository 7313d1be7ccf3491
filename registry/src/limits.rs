//! Bounds on what a submitted schema may be, checked before any parsing or compatibility
//! work: its length in bytes and how deeply its types nest. Together with the polynomial
//! checker in [`compat`](crate::compat) they bound the work one request can ask for.

use serde_json::Value;

use crate::error::Error;

/// serde_json refuses JSON nested deeper than this (its recursion limit).
const JSON_NESTING_LIMIT: usize = 128;

/// The bounds on a submitted schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest schema text accepted, in bytes.
    pub max_schema_bytes: usize,
    /// Deepest nesting of records, arrays and maps accepted (a record of primitives is 1
    /// deep; a union adds no level of its own).
    pub max_schema_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_schema_bytes: 256 * 1024,
            max_schema_depth: 32,
        }
    }
}

impl Limits {
    /// The largest request body the API reads: room for the longest schema, escaped inside
    /// a JSON string, and its references.
    pub fn max_body_bytes(&self) -> usize {
        self.max_schema_bytes
            .saturating_mul(4)
            .saturating_add(64 * 1024)
    }

    /// Parses a submitted schema's JSON within the limits (42201 naming the limit when
    /// outside them).
    pub fn parse(&self, text: &str) -> Result<Value, Error> {
        if text.len() > self.max_schema_bytes {
            return Err(Error::InvalidSchema(format!(
                "the schema is {} bytes long; this registry accepts at most {} (REGISTRY_MAX_SCHEMA_BYTES)",
                text.len(),
                self.max_schema_bytes
            )));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                Error::InvalidSchema(format!(
                    "the schema's JSON nests more than {JSON_NESTING_LIMIT} levels deep; this registry accepts types nested at most {} deep (REGISTRY_MAX_SCHEMA_DEPTH)",
                    self.max_schema_depth
                ))
            } else {
                Error::InvalidSchema(format!("the schema is not valid JSON: {e}"))
            }
        })?;
        let depth = depth(&value);
        if depth > self.max_schema_depth {
            return Err(Error::InvalidSchema(format!(
                "the schema nests records, arrays and maps {depth} levels deep; this registry accepts at most {} (REGISTRY_MAX_SCHEMA_DEPTH)",
                self.max_schema_depth
            )));
        }
        Ok(value)
    }
}

/// How deeply the types of a schema's JSON nest (records, arrays and maps; a union is the
/// deepest of its branches; names and primitives are 0).
fn depth(schema: &Value) -> usize {
    match schema {
        Value::Array(branches) => branches.iter().map(depth).max().unwrap_or(0),
        Value::Object(object) => match object.get("type") {
            Some(Value::String(kind)) => match kind.as_str() {
                "record" | "error" => {
                    let fields = object.get("fields").and_then(Value::as_array);
                    1 + fields
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f.get("type"))
                        .map(depth)
                        .max()
                        .unwrap_or(0)
                }
                "array" => 1 + object.get("items").map_or(0, depth),
                "map" => 1 + object.get("values").map_or(0, depth),
                "enum" | "fixed" => 1,
                _ => 0,
            },
            Some(nested) => depth(nested),
            None => 0,
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_records_arrays_and_maps() {
        assert_eq!(depth(&json!("string")), 0);
        assert_eq!(
            depth(&json!({"type": "record", "name": "A", "fields": []})),
            1
        );
        let optional = json!({"type": "record", "name": "A", "fields": [
            {"name": "b", "type": ["null", {"type": "record", "name": "B", "fields": [
                {"name": "c", "type": {"type": "array", "items": {"type": "map", "values": "int"}}}
            ]}]}
        ]});
        assert_eq!(depth(&optional), 4);
        assert_eq!(
            depth(&json!({"type": {"type": "enum", "name": "E", "symbols": ["X"]}})),
            1
        );
    }

    #[test]
    fn limits_name_themselves() {
        let limits = Limits {
            max_schema_bytes: 100,
            max_schema_depth: 1,
        };
        let long = format!("\"{}\"", "x".repeat(200));
        let err = limits.parse(&long).unwrap_err();
        assert_eq!(err.code(), 42201);
        assert!(
            err.to_string().contains("REGISTRY_MAX_SCHEMA_BYTES"),
            "{err}"
        );
        let deep = r#"{"type":"array","items":{"type":"array","items":"int"}}"#;
        let err = limits.parse(deep).unwrap_err();
        assert!(err.to_string().contains("2 levels deep"), "{err}");
        let limits = Limits::default();
        let json_deep = "[".repeat(200) + &"]".repeat(200);
        let err = limits.parse(&json_deep).unwrap_err();
        assert!(err.to_string().contains("more than 128 levels"), "{err}");
        assert!(
            limits
                .parse("{]")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }
}
