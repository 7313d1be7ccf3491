//! `/schemas/...`: schemas by global id.

use axum::extract::State;
use serde::Serialize;

use super::extract::{Params, PathParams};
use super::reply::{RawJson, Reply};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::store::{SchemaReference, StoredSchema};

/// A schema as `GET /schemas/ids/{id}` shows it; also embedded in subject versions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SchemaBody {
    #[serde(skip_serializing_if = "is_avro")]
    schema_type: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<SchemaReference>,
    schema: String,
}

fn is_avro(kind: &str) -> bool {
    kind == "AVRO"
}

impl SchemaBody {
    pub(super) fn new(schema: &StoredSchema) -> Self {
        Self {
            schema_type: schema.schema_type.clone(),
            references: schema.references.clone(),
            schema: schema.schema.clone(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct SubjectVersionRef {
    subject: String,
    version: i32,
}

/// Ids are numbers; anything else names no schema.
fn parse_id(text: &str) -> Result<i32> {
    text.parse()
        .map_err(|_| Error::SchemaNotFound(format!("Schema {text} not found")))
}

pub(super) async fn types() -> Reply<[&'static str; 1]> {
    Reply(["AVRO"])
}

pub(super) async fn by_id(
    State(registry): State<Registry>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Reply<SchemaBody>> {
    let schema = registry
        .schema_by_id(parse_id(&id)?, params.get("subject"))
        .await?;
    Ok(Reply(SchemaBody::new(&schema)))
}

pub(super) async fn raw_by_id(
    State(registry): State<Registry>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<RawJson> {
    let schema = registry
        .schema_by_id(parse_id(&id)?, params.get("subject"))
        .await?;
    Ok(RawJson(schema.schema.clone()))
}

pub(super) async fn subjects(
    State(registry): State<Registry>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Reply<Vec<String>>> {
    let mut subjects: Vec<String> = registry
        .usages_of(parse_id(&id)?, params.flag("deleted"))
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(Reply(subjects))
}

pub(super) async fn versions(
    State(registry): State<Registry>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Reply<Vec<SubjectVersionRef>>> {
    let usages = registry
        .usages_of(parse_id(&id)?, params.flag("deleted"))
        .await?;
    Ok(Reply(
        usages
            .into_iter()
            .map(|(subject, version)| SubjectVersionRef { subject, version })
            .collect(),
    ))
}
