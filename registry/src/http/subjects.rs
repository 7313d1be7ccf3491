//! `/subjects/...`: registering, looking up, listing and deleting subject versions.

use axum::Extension;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::access::Grant;
use super::extract::{JsonBody, Params, PathParams};
use super::reply::{RawJson, Reply};
use super::schemas::SchemaBody;
use crate::error::Result;
use crate::registry::{Placement, Registry, SubjectVersion, Submission, VersionSpec};
use crate::store::SchemaReference;

/// The body of a registration, lookup or compatibility check. Unknown fields (`metadata`,
/// `ruleSet`, `normalize`) are accepted and ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
    /// IMPORT mode only.
    #[serde(default)]
    id: Option<i32>,
    /// IMPORT mode (or the next version).
    #[serde(default)]
    version: Option<i32>,
}

impl SchemaRequest {
    pub(super) fn submission(&self) -> Submission {
        Submission {
            schema: self.schema.clone(),
            schema_type: self.schema_type.clone(),
            references: self.references.clone().unwrap_or_default(),
        }
    }

    /// Clients send `0` or `-1` for "not set".
    fn placement(&self) -> Placement {
        Placement {
            id: self.id.filter(|id| *id > 0),
            version: self.version.filter(|v| *v > 0),
        }
    }
}

#[derive(Serialize)]
pub(super) struct VersionBody {
    subject: String,
    version: i32,
    id: i32,
    #[serde(flatten)]
    schema: SchemaBody,
}

impl From<SubjectVersion> for VersionBody {
    fn from(v: SubjectVersion) -> Self {
        Self {
            id: v.schema.id,
            schema: SchemaBody::new(&v.schema),
            subject: v.subject,
            version: v.version,
        }
    }
}

#[derive(Serialize)]
pub(super) struct IdBody {
    id: i32,
}

/// Only the subjects the caller may read.
pub(super) async fn list(
    State(registry): State<Registry>,
    Extension(grant): Extension<Grant>,
    params: Params,
) -> Result<Reply<Vec<String>>> {
    let prefix = params.get("subjectPrefix").unwrap_or("");
    let subjects = registry.subjects(params.flag("deleted"), prefix).await?;
    Ok(Reply(
        subjects.into_iter().filter(|s| grant.reads(s)).collect(),
    ))
}

pub(super) async fn lookup(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
    JsonBody(request): JsonBody<SchemaRequest>,
) -> Result<Reply<VersionBody>> {
    let found = registry
        .lookup(&subject, &request.submission(), params.flag("deleted"))
        .await?;
    Ok(Reply(found.into()))
}

pub(super) async fn delete(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Reply<Vec<i32>>> {
    Ok(Reply(
        registry
            .delete_subject(&subject, params.flag("permanent"))
            .await?,
    ))
}

pub(super) async fn versions(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Reply<Vec<i32>>> {
    Ok(Reply(
        registry.versions(&subject, params.flag("deleted")).await?,
    ))
}

pub(super) async fn register(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    JsonBody(request): JsonBody<SchemaRequest>,
) -> Result<Reply<IdBody>> {
    let id = registry
        .register(&subject, &request.submission(), request.placement())
        .await?;
    Ok(Reply(IdBody { id }))
}

pub(super) async fn version(
    State(registry): State<Registry>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
) -> Result<Reply<VersionBody>> {
    let spec = VersionSpec::parse(&version)?;
    let found = registry
        .version(&subject, spec, params.flag("deleted"))
        .await?;
    Ok(Reply(found.into()))
}

pub(super) async fn raw_version(
    State(registry): State<Registry>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
) -> Result<RawJson> {
    let spec = VersionSpec::parse(&version)?;
    let found = registry
        .version(&subject, spec, params.flag("deleted"))
        .await?;
    Ok(RawJson(found.schema.schema.clone()))
}

pub(super) async fn delete_version(
    State(registry): State<Registry>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
) -> Result<Reply<i32>> {
    let spec = VersionSpec::parse(&version)?;
    Ok(Reply(
        registry
            .delete_version(&subject, spec, params.flag("permanent"))
            .await?,
    ))
}

pub(super) async fn referenced_by(
    State(registry): State<Registry>,
    PathParams((subject, version)): PathParams<(String, String)>,
) -> Result<Reply<Vec<i32>>> {
    let spec = VersionSpec::parse(&version)?;
    Ok(Reply(registry.referenced_by(&subject, spec).await?))
}
