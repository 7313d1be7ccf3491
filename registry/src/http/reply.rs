//! Responses: JSON in `application/vnd.schemaregistry.v1+json`, errors as Confluent's
//! `{"error_code": N, "message": "..."}` with its HTTP status.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// The content type of every response.
pub(crate) const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";

/// A JSON response body.
pub(crate) struct Reply<T>(pub(crate) T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        match serde_json::to_string(&self.0) {
            Ok(body) => RawJson(body).into_response(),
            Err(e) => Error::InvalidRequest(format!("could not serialise the response: {e}"))
                .into_response(),
        }
    }
}

/// A body that already is JSON text (a raw schema).
pub(crate) struct RawJson(pub(crate) String);

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1));
        response
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error_code: u32,
    message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error_code: self.code(),
            message: self.client_message(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        (status, RawJson(text)).into_response()
    }
}
