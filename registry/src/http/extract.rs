//! Request extractors that answer in the registry's error format (`{"error_code", "message"}`)
//! instead of axum's plain-text rejections.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The most bytes a request body may have (a request extension, set by the router), to
/// name it in the 413.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// A JSON request body in one of the content types Confluent's clients send.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if let Some(value) = req.headers().get(CONTENT_TYPE) {
            let text = value.to_str().unwrap_or("(not ASCII)");
            if !accepted_content_type(text) {
                return Err(Error::UnsupportedMediaType(text.to_owned()));
            }
        }
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            match limit.filter(|_| e.status() == StatusCode::PAYLOAD_TOO_LARGE) {
                Some(limit) => Error::PayloadTooLarge(limit),
                None => Error::InvalidRequest(e.body_text()),
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::InvalidRequest(
                "the request has no body; this endpoint expects a JSON object".to_owned(),
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            Error::InvalidRequest(format!(
                "the body is not the JSON this endpoint expects: {e}"
            ))
        })
    }
}

/// `application/json`, `application/vnd.schemaregistry.v1+json` and kin (any `+json`), and
/// `application/octet-stream`, which Confluent also accepts.
fn accepted_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "application/octet-stream"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters, decoded (`%2F` in a subject name is a `/`).
pub(crate) struct PathParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|e| Error::InvalidRequest(e.body_text()))
    }
}

/// The query string's parameters (`deleted`, `permanent`, `verbose`, ...).
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// A boolean flag: `true` (any case) is true; absent or anything else is false, as in
    /// Confluent's server.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(map)| Params(map))
            .map_err(|e| Error::InvalidRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_json_content_types_are_accepted() {
        for ok in [
            "application/vnd.schemaregistry.v1+json",
            "application/vnd.schemaregistry+json; charset=utf-8",
            "application/json",
            "Application/JSON",
            "application/octet-stream",
        ] {
            assert!(accepted_content_type(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
        ] {
            assert!(!accepted_content_type(refused), "{refused}");
        }
    }
}
