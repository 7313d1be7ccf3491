//! `/schemas/...`: schemas by global id.

use axum::Extension;
use axum::extract::State;
use serde::Serialize;

use super::access::Grant;
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

/// A schema is visible to a caller who may read one of the subjects it is registered under.
async fn visible_schema(
    registry: &Registry,
    grant: &Grant,
    id: i32,
    subject: Option<&str>,
) -> Result<std::sync::Arc<StoredSchema>> {
    let schema = registry.schema_by_id(id, subject).await?;
    let mut subjects: Vec<String> = registry
        .usages_of(id, true)
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    grant.reads_any(&subjects)?;
    Ok(schema)
}

pub(super) async fn types() -> Reply<[&'static str; 1]> {
    Reply(["AVRO"])
}

pub(super) async fn by_id(
    State(registry): State<Registry>,
    Extension(grant): Extension<Grant>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Reply<SchemaBody>> {
    let schema = visible_schema(&registry, &grant, parse_id(&id)?, params.get("subject")).await?;
    Ok(Reply(SchemaBody::new(&schema)))
}

pub(super) async fn raw_by_id(
    State(registry): State<Registry>,
    Extension(grant): Extension<Grant>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<RawJson> {
    let schema = visible_schema(&registry, &grant, parse_id(&id)?, params.get("subject")).await?;
    Ok(RawJson(schema.schema.clone()))
}

pub(super) async fn subjects(
    State(registry): State<Registry>,
    Extension(grant): Extension<Grant>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Reply<Vec<String>>> {
    let id = parse_id(&id)?;
    visible_schema(&registry, &grant, id, None).await?;
    let mut subjects: Vec<String> = registry
        .usages_of(id, params.flag("deleted"))
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .filter(|subject| grant.reads(subject))
        .collect();
    subjects.dedup();
    Ok(Reply(subjects))
}

pub(super) async fn versions(
    State(registry): State<Registry>,
    Extension(grant): Extension<Grant>,
    PathParams(id): PathParams<String>,
    params: Params,
) -> Result<Reply<Vec<SubjectVersionRef>>> {
    let id = parse_id(&id)?;
    visible_schema(&registry, &grant, id, None).await?;
    let usages = registry.usages_of(id, params.flag("deleted")).await?;
    Ok(Reply(
        usages
            .into_iter()
            .filter(|(subject, _)| grant.reads(subject))
            .map(|(subject, version)| SubjectVersionRef { subject, version })
            .collect(),
    ))
}
