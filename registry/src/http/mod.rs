//! The REST API: Confluent Schema Registry's routes for AVRO. Handlers are thin: they parse
//! the request, call [`Registry`], and shape Confluent's JSON.

mod access;
mod compatibility;
mod extract;
mod reply;
mod schemas;
mod settings;
mod subjects;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Uri;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::auth::Access;
use crate::error::Error;
use crate::registry::Registry;

/// The registry's routes over `registry`, behind `access` (who may read and write what),
/// ready to serve (also on a test listener).
pub fn router(registry: Registry, access: Arc<Access>) -> Router {
    let body_limit = registry.limits().max_body_bytes();
    Router::new()
        .route("/", get(|| async { reply::Reply(serde_json::json!({})) }))
        .route("/schemas/types", get(schemas::types))
        .route("/schemas/ids/{id}", get(schemas::by_id))
        .route("/schemas/ids/{id}/schema", get(schemas::raw_by_id))
        .route("/schemas/ids/{id}/subjects", get(schemas::subjects))
        .route("/schemas/ids/{id}/versions", get(schemas::versions))
        .route("/subjects", get(subjects::list))
        .route(
            "/subjects/{subject}",
            post(subjects::lookup).delete(subjects::delete),
        )
        .route(
            "/subjects/{subject}/versions",
            get(subjects::versions).post(subjects::register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(subjects::version).delete(subjects::delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(subjects::raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(subjects::referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility::against_levels),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility::against_version),
        )
        .route(
            "/config",
            get(settings::global_config)
                .put(settings::put_global_config)
                .delete(settings::delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(settings::subject_config)
                .put(settings::put_subject_config)
                .delete(settings::delete_subject_config),
        )
        .route(
            "/mode",
            get(settings::global_mode)
                .put(settings::put_global_mode)
                .delete(settings::delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(settings::subject_mode)
                .put(settings::put_subject_mode)
                .delete(settings::delete_subject_mode),
        )
        .fallback(|uri: Uri| async move { Error::NoSuchEndpoint(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(access, access::guard))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(extract::BodyLimit(body_limit)))
        .layer(middleware::from_fn(log_request))
        .with_state(registry)
}

async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
