//! `/compatibility/...`: would this schema be accepted?

use axum::extract::State;
use serde::Serialize;

use super::extract::{JsonBody, Params, PathParams};
use super::reply::Reply;
use super::subjects::SchemaRequest;
use crate::error::Result;
use crate::registry::{Registry, VersionSpec};

/// `{"is_compatible": bool}`, with `messages` when `?verbose=true` (as Confluent).
#[derive(Serialize)]
pub(super) struct CompatibilityBody {
    is_compatible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<String>>,
}

fn body(problems: Vec<String>, verbose: bool) -> Reply<CompatibilityBody> {
    Reply(CompatibilityBody {
        is_compatible: problems.is_empty(),
        messages: verbose.then_some(problems),
    })
}

pub(super) async fn against_levels(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
    JsonBody(request): JsonBody<SchemaRequest>,
) -> Result<Reply<CompatibilityBody>> {
    let problems = registry
        .check_compatibility(&subject, None, &request.submission())
        .await?;
    Ok(body(problems, params.flag("verbose")))
}

pub(super) async fn against_version(
    State(registry): State<Registry>,
    PathParams((subject, version)): PathParams<(String, String)>,
    params: Params,
    JsonBody(request): JsonBody<SchemaRequest>,
) -> Result<Reply<CompatibilityBody>> {
    let spec = VersionSpec::parse(&version)?;
    let problems = registry
        .check_compatibility(&subject, Some(spec), &request.submission())
        .await?;
    Ok(body(problems, params.flag("verbose")))
}
