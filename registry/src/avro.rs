//! Parsing a submitted Avro schema, together with the schemas its references point at, into
//! the form the compatibility checker walks.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};

/// A parsed Avro schema and every named type it may mention: its own definitions and those
/// of the schemas it references (shared types across topics).
#[derive(Debug, Clone)]
pub struct AvroSchema {
    root: Schema,
    names: HashMap<Name, Schema>,
}

impl AvroSchema {
    /// Parses `text`, resolving named types against `referenced` (the texts of the schemas
    /// its references point at, transitively, in any order). The error is the parser's
    /// message, for a 42201 answer.
    pub fn parse(text: &str, referenced: &[String]) -> Result<Self, String> {
        let (root, definitions) = if referenced.is_empty() {
            (Schema::parse_str(text), Vec::new())
        } else {
            match Schema::parse_str_with_list(text, referenced) {
                Ok((root, list)) => (Ok(root), list),
                Err(e) => (Err(e), Vec::new()),
            }
        };
        let root = root.map_err(|e| e.to_string())?;
        let mut names = HashMap::new();
        collect_names(&root, &mut names);
        for schema in &definitions {
            collect_names(schema, &mut names);
        }
        Ok(Self { root, names })
    }

    /// The schema itself.
    pub fn root(&self) -> &Schema {
        &self.root
    }

    /// Follows a `Ref` to the named type's definition, and gives a record, enum or fixed
    /// type as its one registered definition (so each named type is one node, wherever it is
    /// written); any other schema is returned as is.
    pub fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        let name = match schema {
            Schema::Ref { name } => name,
            Schema::Record(r) => &r.name,
            Schema::Enum(e) => &e.name,
            Schema::Fixed(f) => &f.name,
            _ => return schema,
        };
        self.names.get(name).unwrap_or(schema)
    }
}

/// Records every named type defined inside `schema` (records, enums, fixed, and the fixed
/// types under logical types).
fn collect_names(schema: &Schema, names: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Record(record) => {
            names
                .entry(record.name.clone())
                .or_insert_with(|| schema.clone());
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names
                .entry(e.name.clone())
                .or_insert_with(|| schema.clone());
        }
        Schema::Fixed(f) | Schema::Duration(f) => {
            names
                .entry(f.name.clone())
                .or_insert_with(|| schema.clone());
        }
        Schema::Decimal(d) => {
            if let InnerDecimalSchema::Fixed(f) = &d.inner {
                names
                    .entry(f.name.clone())
                    .or_insert_with(|| Schema::Fixed(f.clone()));
            }
        }
        Schema::Uuid(UuidSchema::Fixed(f)) => {
            names
                .entry(f.name.clone())
                .or_insert_with(|| Schema::Fixed(f.clone()));
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for variant in u.variants() {
                collect_names(variant, names);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_named_types() {
        let studio = r#"{"type":"record","name":"Studio","namespace":"anineplus","fields":[{"name":"name","type":"string"}]}"#;
        let anime = r#"{"type":"record","name":"Anime","namespace":"anineplus","fields":[{"name":"studio","type":"anineplus.Studio"}]}"#;
        let parsed = AvroSchema::parse(anime, &[studio.to_owned()]).unwrap();
        let Schema::Record(record) = parsed.root() else {
            panic!("not a record")
        };
        assert!(matches!(
            parsed.resolve(&record.fields[0].schema),
            Schema::Record(_)
        ));
    }

    #[test]
    fn unknown_types_and_bad_defaults_are_refused() {
        let err = AvroSchema::parse(
            r#"{"type":"record","name":"A","fields":[{"name":"s","type":"anineplus.Studio"}]}"#,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("Studio"), "{err}");
        assert!(AvroSchema::parse(r#"{"type":"nope"}"#, &[]).is_err());
    }
}
