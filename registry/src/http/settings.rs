//! `/config` (compatibility levels) and `/mode`, global and per subject.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{JsonBody, Params, PathParams};
use super::reply::Reply;
use crate::compat::Compatibility;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::registry::Registry;

/// `GET`/`DELETE` answer `{"compatibilityLevel": ...}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LevelBody {
    compatibility_level: &'static str,
}

/// `PUT` takes and answers `{"compatibility": ...}` (`compatibilityLevel` accepted too).
#[derive(Serialize, Deserialize)]
pub(super) struct ConfigUpdate {
    #[serde(default, alias = "compatibilityLevel")]
    compatibility: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ModeBody {
    #[serde(default)]
    mode: Option<String>,
}

fn level(level: Compatibility) -> Reply<LevelBody> {
    Reply(LevelBody {
        compatibility_level: level.as_str(),
    })
}

fn mode(mode: Mode) -> Reply<ModeBody> {
    Reply(ModeBody {
        mode: Some(mode.as_str().to_owned()),
    })
}

fn requested_level(update: &ConfigUpdate) -> Result<Compatibility> {
    update
        .compatibility
        .as_deref()
        .ok_or_else(|| {
            Error::InvalidRequest(
                "the body needs a \"compatibility\" field, e.g. {\"compatibility\": \"BACKWARD\"}"
                    .to_owned(),
            )
        })?
        .parse()
}

fn requested_mode(body: &ModeBody) -> Result<Mode> {
    body.mode
        .as_deref()
        .ok_or_else(|| {
            Error::InvalidRequest(
                "the body needs a \"mode\" field, e.g. {\"mode\": \"READONLY\"}".to_owned(),
            )
        })?
        .parse()
}

async fn put_config(
    registry: &Registry,
    subject: Option<&str>,
    update: ConfigUpdate,
) -> Result<Reply<ConfigUpdate>> {
    let new = requested_level(&update)?;
    registry.set_compatibility(subject, new).await?;
    Ok(Reply(ConfigUpdate {
        compatibility: Some(new.as_str().to_owned()),
    }))
}

async fn put_mode(
    registry: &Registry,
    subject: Option<&str>,
    params: &Params,
    body: ModeBody,
) -> Result<Reply<ModeBody>> {
    let new = requested_mode(&body)?;
    registry
        .set_mode(subject, new, params.flag("force"))
        .await?;
    Ok(mode(new))
}

pub(super) async fn global_config(State(registry): State<Registry>) -> Result<Reply<LevelBody>> {
    Ok(level(registry.compatibility(None, true).await?))
}

pub(super) async fn put_global_config(
    State(registry): State<Registry>,
    JsonBody(update): JsonBody<ConfigUpdate>,
) -> Result<Reply<ConfigUpdate>> {
    put_config(&registry, None, update).await
}

pub(super) async fn delete_global_config(
    State(registry): State<Registry>,
) -> Result<Reply<LevelBody>> {
    Ok(level(registry.delete_compatibility(None).await?))
}

pub(super) async fn subject_config(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Reply<LevelBody>> {
    Ok(level(
        registry
            .compatibility(Some(&subject), params.flag("defaultToGlobal"))
            .await?,
    ))
}

pub(super) async fn put_subject_config(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    JsonBody(update): JsonBody<ConfigUpdate>,
) -> Result<Reply<ConfigUpdate>> {
    put_config(&registry, Some(&subject), update).await
}

pub(super) async fn delete_subject_config(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
) -> Result<Reply<LevelBody>> {
    Ok(level(registry.delete_compatibility(Some(&subject)).await?))
}

pub(super) async fn global_mode(State(registry): State<Registry>) -> Result<Reply<ModeBody>> {
    Ok(mode(registry.mode(None, true).await?))
}

pub(super) async fn put_global_mode(
    State(registry): State<Registry>,
    params: Params,
    JsonBody(body): JsonBody<ModeBody>,
) -> Result<Reply<ModeBody>> {
    put_mode(&registry, None, &params, body).await
}

pub(super) async fn delete_global_mode(
    State(registry): State<Registry>,
) -> Result<Reply<ModeBody>> {
    Ok(mode(registry.delete_mode(None).await?))
}

pub(super) async fn subject_mode(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
) -> Result<Reply<ModeBody>> {
    Ok(mode(
        registry
            .mode(Some(&subject), params.flag("defaultToGlobal"))
            .await?,
    ))
}

pub(super) async fn put_subject_mode(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
    params: Params,
    JsonBody(body): JsonBody<ModeBody>,
) -> Result<Reply<ModeBody>> {
    put_mode(&registry, Some(&subject), &params, body).await
}

pub(super) async fn delete_subject_mode(
    State(registry): State<Registry>,
    PathParams(subject): PathParams<String>,
) -> Result<Reply<ModeBody>> {
    Ok(mode(registry.delete_mode(Some(&subject)).await?))
}
