//! `POST /graphql` (and GraphiQL at `GET /graphql` in dev).
//!
//! Order of checks: body size (axum, 413), JSON shape, batch size, credentials, rate
//! limits (429 with `retry-after`), then per operation the document limits (aliases,
//! operations) and the schema's own (depth, complexity). Every error leaves with an
//! `extensions.code`; errors the executor raised without one are classified here: before
//! execution they are the client's (`BAD_USER_INPUT`), during execution ours (`INTERNAL`,
//! message hidden).

use std::net::SocketAddr;
use std::time::Instant;

use async_graphql::{BatchRequest, BatchResponse, ErrorExtensions, Response as GqlResponse};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::correlation::CorrelationId;
use crate::Error;
use crate::auth::Viewer;
use crate::domain::Caller;
use crate::error::ErrorCode;
use crate::graphql::limits;
use crate::ratelimit::Verdict;

/// GraphiQL in dev; nothing outside.
pub async fn graphiql(State(state): State<AppState>) -> Response {
    if state.dev {
        Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .finish(),
        )
        .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// A response made of one error.
fn error_response(status: StatusCode, err: Error, state: &AppState) -> Response {
    state
        .metrics
        .errors
        .with_label_values(&[err.code().as_str()])
        .inc();
    let body = GqlResponse::from_errors(vec![err.extend().into_server_error(Default::default())]);
    let mut response = (status, Json(body)).into_response();
    if let Error::RateLimited(secs) = err
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The GraphQL endpoint.
pub async fn graphql(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                Error::bad_input(format!("the body is not a GraphQL request: {e}")),
                &state,
            );
        }
    };
    let requests = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(v) => v,
    };
    let single = requests.len() == 1 && !body.trim_ascii_start().starts_with(b"[");
    if requests.is_empty() || requests.len() > state.max_batch {
        return error_response(
            StatusCode::BAD_REQUEST,
            Error::bad_input(format!("a batch holds 1 to {} operations", state.max_batch)),
            &state,
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let viewer = match state.domain.tokens().viewer(authorization) {
        Ok(viewer) => viewer,
        Err(e) => return error_response(StatusCode::UNAUTHORIZED, e, &state),
    };
    let user = viewer.id().map(|id| id.to_string());
    if let Verdict::Limited(secs) = state
        .limiter
        .check(&peer.ip().to_string(), user.as_deref())
        .await
    {
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            Error::RateLimited(secs),
            &state,
        );
    }
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        responses.push(execute(&state, viewer, &correlation_id, request).await);
    }
    let body = if single {
        BatchResponse::Single(responses.remove(0))
    } else {
        BatchResponse::Batch(responses)
    };
    Json(body).into_response()
}

async fn execute(
    state: &AppState,
    viewer: Viewer,
    correlation_id: &str,
    request: async_graphql::Request,
) -> GqlResponse {
    let started = Instant::now();
    if let Err(e) = limits::check(&request.query, state.limits) {
        state
            .metrics
            .errors
            .with_label_values(&[e.code().as_str()])
            .inc();
        return GqlResponse::from_errors(vec![e.extend().into_server_error(Default::default())]);
    }
    let field = limits::root_field(&request.query, request.operation_name.as_deref());
    let caller = Caller {
        viewer,
        correlation_id: correlation_id.to_owned(),
    };
    let mut response = state.schema.execute(request.data(caller)).await;
    for error in &mut response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .and_then(|v| match v {
                async_graphql::Value::String(s) => Some(s.clone()),
                _ => None,
            });
        let code = match code {
            Some(code) => code,
            None if error.path.is_empty() => {
                let code = ErrorCode::BadUserInput.as_str();
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", code);
                code.to_owned()
            }
            None => {
                tracing::error!(error = %error.message, "unclassified resolver error");
                error.message = "internal error".to_owned();
                let code = ErrorCode::Internal.as_str();
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", code);
                code.to_owned()
            }
        };
        state
            .metrics
            .errors
            .with_label_values(&[code.as_str()])
            .inc();
    }
    // Label by root field only when the document executed (so it names a real field).
    let label = match (&response.data, field) {
        (async_graphql::Value::Null, _) | (_, None) => "rejected".to_owned(),
        (_, Some(field)) => field,
    };
    tracing::info!(
        operation = %label,
        errors = response.errors.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "graphql operation"
    );
    state.metrics.requests.with_label_values(&[&label]).inc();
    state
        .metrics
        .latency
        .with_label_values(&[&label])
        .observe(started.elapsed().as_secs_f64());
    response
}
