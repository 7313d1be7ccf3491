//! `POST /graphql` (and GraphiQL at `GET /graphql` in dev).
//!
//! Order of checks: body size (axum, 413), content type (`application/json` only, else
//! 415: a cross-site form or `text/plain` post never executes), JSON shape, batch size,
//! credentials (a refused token still counts against the client's rate limit), rate limits
//! (429 with `retry-after`), then per operation the document limits (aliases, operations,
//! `_entities` representations) and the schema's own (depth, complexity). Query operations
//! stop at the request's deadline (`TIMEOUT`); each operation gets its
//! [`RequestBudget`] and the client's [`PasswordGate`].
//!
//! Responses are `application/json` (every executed answer 200), or
//! `application/graphql-response+json` when the `Accept` header asks for it: then a
//! document that could not run is 400 (504 past the deadline) and has no `data` entry. Every error leaves with an
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
use crate::graphql::budget::RequestBudget;
use crate::graphql::limits;
use crate::ratelimit::{PasswordGate, Verdict, client_key};

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

/// The media type of a GraphQL-over-HTTP response, as the client's `Accept` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `application/json`: every answer is 200 (unless refused before parsing), `data` is
    /// always present.
    Json,
    /// `application/graphql-response+json`: a document that cannot run (unparsable,
    /// invalid, over a limit) is 400 and has no `data`.
    GraphqlResponse,
}

/// `application/graphql-response+json`.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

impl Format {
    fn of(headers: &HeaderMap) -> Self {
        let accepts = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let mut parts = item.split(';');
                let media = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) && !refused
            });
        if accepts {
            Format::GraphqlResponse
        } else {
            Format::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            Format::Json => HeaderValue::from_static("application/json"),
            Format::GraphqlResponse => HeaderValue::from_static(GRAPHQL_RESPONSE_JSON),
        }
    }
}

/// Whether a POST body is declared `application/json` (any parameters, e.g. a charset).
/// Anything else (`text/plain`, forms) is what a cross-site page can send without a
/// preflight, so it is refused before it is read.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The GraphQL error of `err`, without a location (it concerns the whole request).
fn request_error(err: &Error) -> async_graphql::ServerError {
    let mut error = err.extend().into_server_error(Default::default());
    error.locations.clear();
    error
}

/// A response serialised in `format`; in `application/graphql-response+json`, `data` is
/// dropped when nothing executed.
fn respond(status: StatusCode, format: Format, body: &BatchResponse) -> Response {
    let mut value = serde_json::to_value(body).unwrap_or_default();
    if format == Format::GraphqlResponse {
        let strip = |v: &mut serde_json::Value| {
            // Nothing executed: errors without a path, and no data.
            if let Some(map) = v.as_object_mut()
                && map.get("data").is_some_and(serde_json::Value::is_null)
                && map
                    .get("errors")
                    .and_then(|e| e.as_array())
                    .is_some_and(|errors| errors.iter().all(|e| e.get("path").is_none()))
            {
                map.remove("data");
            }
        };
        match &mut value {
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            v => strip(v),
        }
    }
    let mut response = (status, Json(value)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, format.content_type());
    response
}

/// A response made of one error.
fn error_response(status: StatusCode, format: Format, err: Error, state: &AppState) -> Response {
    state
        .metrics
        .errors
        .with_label_values(&[err.code().as_str()])
        .inc();
    let body = BatchResponse::Single(GqlResponse::from_errors(vec![request_error(&err)]));
    let mut response = respond(status, format, &body);
    if let Error::RateLimited(secs) = err
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The status of a single response in `application/graphql-response+json`: 400 when the
/// document could not run (an error before execution: no path, and no data), 504 when it
/// ran out of time, 200 otherwise.
fn status_of(response: &GqlResponse) -> StatusCode {
    if response.data != async_graphql::Value::Null
        || response.errors.iter().any(|e| !e.path.is_empty())
    {
        return StatusCode::OK;
    }
    let timed_out = |e: &async_graphql::ServerError| {
        matches!(
            e.extensions.as_ref().and_then(|x| x.get("code")),
            Some(async_graphql::Value::String(code)) if code == ErrorCode::Timeout.as_str()
        )
    };
    if response.errors.iter().any(timed_out) {
        StatusCode::GATEWAY_TIMEOUT
    } else if response.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// The GraphQL endpoint.
pub async fn graphql(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = Format::of(&headers);
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format,
            Error::bad_input("POST /graphql takes a body of content-type application/json"),
            &state,
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format,
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
            format,
            Error::bad_input(format!("a batch holds 1 to {} operations", state.max_batch)),
            &state,
        );
    }
    let client = client_key(peer.ip());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let viewer = match state.domain.tokens().viewer(authorization) {
        Ok(viewer) => viewer,
        Err(e) => {
            // A refused token counts against the client too, so guessing tokens is limited.
            if let Verdict::Limited(secs) = state.limiter.check(&client, None).await {
                return error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    format,
                    Error::RateLimited(secs),
                    &state,
                );
            }
            return error_response(StatusCode::UNAUTHORIZED, format, e, &state);
        }
    };
    let user = viewer.id().map(|id| id.to_string());
    if let Verdict::Limited(secs) = state.limiter.check(&client, user.as_deref()).await {
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            format,
            Error::RateLimited(secs),
            &state,
        );
    }
    let gate = PasswordGate::new(state.limiter.clone(), client);
    let deadline = tokio::time::Instant::now() + state.limits.request_timeout;
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        let request = request.data(gate.clone());
        responses.push(execute(&state, viewer, &correlation_id, request, deadline).await);
    }
    if single {
        let response = responses.remove(0);
        let status = match format {
            Format::Json => StatusCode::OK,
            Format::GraphqlResponse => status_of(&response),
        };
        respond(status, format, &BatchResponse::Single(response))
    } else {
        respond(StatusCode::OK, format, &BatchResponse::Batch(responses))
    }
}

async fn execute(
    state: &AppState,
    viewer: Viewer,
    correlation_id: &str,
    request: async_graphql::Request,
    deadline: tokio::time::Instant,
) -> GqlResponse {
    let started = Instant::now();
    let mut request = request;
    // Parsed once here; the executor uses the same document. (The name and variables are
    // lent out of the request while its document is borrowed, then put back.)
    let operation = request.operation_name.take();
    let variables = std::mem::take(&mut request.variables);
    let checked = match state.documents.parsed(&mut request) {
        Ok(document) => limits::check(document, operation.as_deref(), &variables, &state.limits),
        // The executor reports the syntax error.
        Err(_) => Ok(limits::Shape::default()),
    };
    request.operation_name = operation;
    request.variables = variables;
    let shape = match checked {
        Ok(shape) => shape,
        Err(e) => {
            state
                .metrics
                .errors
                .with_label_values(&[e.code().as_str()])
                .inc();
            return GqlResponse::from_errors(vec![request_error(&e)]);
        }
    };
    let limits::Shape {
        entities,
        mutation,
        root_field: field,
    } = shape;
    let caller = Caller {
        viewer,
        correlation_id: correlation_id.to_owned(),
    };
    let budget = RequestBudget::new(
        state.limits.resolver_concurrency,
        entities,
        state.limits.max_complexity,
    );
    let run = state.schema.execute(request.data(caller).data(budget));
    // A mutation runs to its end (cutting it could leave a committed write unanswered and
    // its cache entries undeleted); queries stop at the deadline.
    let mut response = if mutation {
        run.await
    } else {
        match tokio::time::timeout_at(deadline, run).await {
            Ok(response) => response,
            Err(_) => {
                let e = Error::Timeout(state.limits.request_timeout.as_millis() as u64);
                tracing::warn!(operation = ?field, "query stopped at its deadline");
                GqlResponse::from_errors(vec![request_error(&e)])
            }
        }
    };
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
