//! The Elasticsearch-compatible search client, and the one call every part of the project
//! makes to the engine with the one mapping of its statuses to an [`ErrorClass`].
//!
//! The `elasticsearch` crate sends plain `application/json` and performs no product check,
//! so the same client talks to OpenSearch (the local stack) and Elasticsearch 8 (the
//! docker-compose stack). Only APIs common to both are used: index, bulk with external
//! versioning, search, refresh, aliases, templates.
//!
//! - [`call`] / [`call_json`]: one request; a transport failure or a status other than
//!   2xx is a [`CallError`] carrying the status, the engine's reason and its class;
//! - [`request_class`]: a whole request's status → class (busy or down → `Unavailable`);
//! - [`item_class`]: one bulk item's status → class (429/5xx → `Retryable`);
//! - [`describe`]: the engine's error object as one line.

use std::time::Duration;

use bytes::Bytes;
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use serde_json::Value;

use crate::{Error, ErrorClass, Outcome, Result};

/// Default URL of the local stack's search engine.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9200";

/// Builds a client for the single node at `url`, with a per-request `timeout`.
pub fn client(url: &str, timeout: Duration) -> Result<Elasticsearch> {
    let parsed = url::Url::parse(url).map_err(|source| Error::SearchUrl {
        url: url.to_owned(),
        source,
    })?;
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(parsed))
        .timeout(timeout)
        .disable_proxy()
        // Uncompressed answers: the engine is the bottleneck of a bulk load, and gzipping
        // its answers costs it (and us, inflating them) more than the bytes cost a local
        // link.
        .header(
            elasticsearch::http::headers::ACCEPT_ENCODING,
            elasticsearch::http::headers::HeaderValue::from_static("identity"),
        )
        .build()?;
    Ok(Elasticsearch::new(transport))
}

/// A call to the engine that failed: unreachable, or answered with an error status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {path}: {reason}")]
pub struct CallError {
    /// The request's method, e.g. `POST`.
    pub method: String,
    /// The request's path.
    pub path: String,
    /// The status, when the engine answered.
    pub status: Option<u16>,
    /// Whose fault it is: see [`request_class`].
    pub class: ErrorClass,
    /// What failed: the transport's error, or `status N: type: reason`.
    pub reason: String,
}

impl CallError {
    /// The failure as the outcome of each record the call was for.
    pub fn outcome(&self) -> Outcome {
        let reason = self.to_string();
        match self.class {
            ErrorClass::Permanent => Outcome::Permanent(reason),
            ErrorClass::Retryable => Outcome::Retry(reason),
            ErrorClass::Unavailable => Outcome::Unavailable(reason),
        }
    }

    /// Whether the engine answered 404 (no such index, alias or document).
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

/// The class of a status that a whole request was answered with. A request refused for
/// being busy (429), timed out (408) or failed by the engine (5xx) is the destination's
/// fault: `Unavailable`, so a pipeline pauses instead of routing its records. A 404 for a
/// write means the engine or a proxy lost the route, and is `Unavailable` too (callers
/// for which 404 is an answer test [`CallError::is_not_found`]). Any other status is the
/// request's own fault: `Permanent`.
pub fn request_class(status: u16) -> ErrorClass {
    match status {
        404 | 408 | 429 | 500..=599 => ErrorClass::Unavailable,
        _ => ErrorClass::Permanent,
    }
}

/// The class of one bulk item's error status: 429 and 5xx pass with time (`Retryable`),
/// the rest is the document's own (`Permanent`). (2xx and a versioned 409 are not
/// failures; the sink decides those before.)
pub fn item_class(status: u16) -> ErrorClass {
    match status {
        408 | 429 | 500..=599 => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

/// Sends one request with `body` of `content_type`; returns the status and body of a 2xx
/// answer.
pub async fn call(
    client: &Elasticsearch,
    method: Method,
    path: &str,
    content_type: &'static str,
    body: Option<Bytes>,
) -> std::result::Result<(u16, Bytes), CallError> {
    let fail = |status: Option<u16>, class, reason: String| CallError {
        method: method_name(method),
        path: path.to_owned(),
        status,
        class,
        reason,
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let response = client
        .send(method, path, headers, None::<&()>, body, None)
        .await
        .map_err(|e| {
            fail(
                None,
                ErrorClass::Unavailable,
                format!("search engine unreachable: {e}"),
            )
        })?;
    let status = response.status_code().as_u16();
    let body = response.bytes().await.map_err(|e| {
        fail(
            Some(status),
            ErrorClass::Unavailable,
            format!("status {status}, reading the response: {e}"),
        )
    })?;
    if (200..300).contains(&status) {
        return Ok((status, body));
    }
    let error = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    let reason = match &error {
        Some(e) => describe(status, Some(e)),
        None => format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        ),
    };
    Err(fail(Some(status), request_class(status), reason))
}

/// [`call`] with a JSON body and a JSON answer (`Null` for an empty one, e.g. to `HEAD`).
pub async fn call_json(
    client: &Elasticsearch,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> std::result::Result<Value, CallError> {
    let bytes =
        body.map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON to a Vec never fails")));
    let (status, answer) = call(client, method, path, "application/json", bytes).await?;
    if answer.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer).map_err(|e| CallError {
        method: method_name(method),
        path: path.to_owned(),
        status: Some(status),
        class: ErrorClass::Unavailable,
        reason: format!("status {status}, unreadable response: {e}"),
    })
}

fn method_name(method: Method) -> String {
    format!("{method:?}").to_uppercase()
}

/// `status 400: mapper_parsing_exception: failed to parse ... (caused by ...: ...)`.
pub fn describe(status: u16, error: Option<&Value>) -> String {
    let Some(error) = error else {
        return format!("status {status}");
    };
    if let Some(text) = error.as_str() {
        return format!("status {status}: {text}");
    }
    let kind = error["type"].as_str().unwrap_or("error");
    let reason = error["reason"].as_str().unwrap_or("");
    let mut out = format!("status {status}: {kind}: {reason}");
    let mut cause = error.get("caused_by");
    while let Some(c) = cause {
        out.push_str(&format!(
            " (caused by {}: {})",
            c["type"].as_str().unwrap_or("error"),
            c["reason"].as_str().unwrap_or("")
        ));
        cause = c.get("caused_by");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_an_invalid_url_naming_it() {
        let err = client("not a url", Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("not a url"), "{err}");
    }

    #[test]
    fn statuses_map_to_one_class_each() {
        for s in [404, 408, 429, 500, 503] {
            assert_eq!(request_class(s), ErrorClass::Unavailable, "{s}");
        }
        for s in [400, 401, 403, 409, 413] {
            assert_eq!(request_class(s), ErrorClass::Permanent, "{s}");
        }
        assert_eq!(item_class(429), ErrorClass::Retryable);
        assert_eq!(item_class(503), ErrorClass::Retryable);
        assert_eq!(item_class(400), ErrorClass::Permanent);
        assert_eq!(item_class(404), ErrorClass::Permanent);
    }

    #[test]
    fn a_mapping_error_keeps_the_engines_reason() {
        let error = json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [n]",
            "caused_by": {"type": "number_format_exception", "reason": "For input string: \"x\""}});
        assert_eq!(
            describe(400, Some(&error)),
            "status 400: mapper_parsing_exception: failed to parse field [n] \
             (caused by number_format_exception: For input string: \"x\")"
        );
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_unavailable() {
        // Port 9 (discard) on loopback: nothing listens there on these machines.
        let client = client("http://127.0.0.1:9", Duration::from_secs(2)).unwrap();
        let err = call_json(&client, Method::Get, "/_cluster/health", None)
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Unavailable);
        assert_eq!(err.status, None);
        assert!(
            err.to_string()
                .starts_with("GET /_cluster/health: search engine unreachable"),
            "{err}"
        );
        assert!(err.outcome().is_unavailable());
    }
}
