//! The Elasticsearch-compatible search client, and the one call every part of the project
//! makes to the engine with the one mapping of its statuses to an [`ErrorClass`].
//!
//! The `elasticsearch` crate sends plain `application/json` and performs no product check,
//! so the same client talks to OpenSearch (the local stack) and Elasticsearch 8 (the
//! docker-compose stack). Only APIs common to both are used: index, bulk with external
//! versioning, search, refresh, aliases, templates.
//!
//! - [`client`]: one node, or several (`http://a:9200,http://b:9200`) taken in turn;
//! - [`call`] / [`call_json`]: one request; a transport failure or a status other than
//!   2xx is a [`CallError`] carrying the status, the engine's reason and its class;
//! - [`failover`]: a request that no node took (connection refused) tried on the next
//!   ones, so a stopped node costs its clients nothing but a refused connect;
//! - [`request_class`]: a whole request's status → class (busy or down → `Unavailable`);
//! - [`item_class`]: one bulk item's error → class (429/5xx → `Retryable`, an index
//!   the engine cannot write → `Unavailable`);
//! - [`describe`]: the engine's error object as one line.

use std::time::Duration;

use bytes::Bytes;
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, TransportBuilder,
};
use serde_json::Value;

use crate::{Error, ErrorClass, Outcome, Result};

/// Default URL of the local stack's search engine.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9200";

/// Builds a client for the node at `url`, or for each node of a comma-separated list of
/// them (`http://a:9200,http://b:9200`: requests go to the nodes in turn; with
/// [`failover`], one a node refuses goes to the next), with a per-request `timeout`.
pub fn client(url: &str, timeout: Duration) -> Result<Elasticsearch> {
    let urls = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            url::Url::parse(u).map_err(|source| Error::SearchUrl {
                url: u.to_owned(),
                source,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let builder = match urls.len() {
        0 => {
            return Err(Error::SearchUrl {
                url: url.to_owned(),
                source: url::ParseError::EmptyHost,
            });
        }
        1 => TransportBuilder::new(SingleNodeConnectionPool::new(urls[0].clone())),
        _ => TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls, None)),
    };
    let transport = builder
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

/// How many times [`failover`] sends a request that no node took: enough for the nodes
/// of a small cluster taken in turn (the turn is shared by concurrent requests, so a
/// request may meet the same stopped node twice).
pub const FAILOVER_ATTEMPTS: usize = 4;

/// Sends the request `send` makes, again (at most [`FAILOVER_ATTEMPTS`] in all) while
/// the connection to the node it went to is refused: such a request reached no node, so
/// sending it again is safe whatever it does, and a client of several nodes sends it to
/// the next one. Any other failure (a timeout, a node that answered) is returned as it
/// is: a request that may have been taken is the caller's to retry.
pub async fn failover<T, F, Fut>(mut send: F) -> std::result::Result<T, elasticsearch::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, elasticsearch::Error>>,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(e) if attempt < FAILOVER_ATTEMPTS && is_refused(&e) => attempt += 1,
            other => return other,
        }
    }
}

/// `error` and its causes, `: `-separated (`error sending request for url (...): operation
/// timed out`): the transport's own message names no cause.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

/// Whether `error` is a connection the node refused (nothing listens there: a stopped
/// node), found in its chain of causes.
pub fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = e.source();
    }
    false
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

/// The class of one bulk item's error: its status, and its error object where the status
/// does not tell whose fault it is. 429 and 5xx pass with time (`Retryable`). An error
/// about the index rather than the document is the engine's (`Unavailable`: a batch of
/// them pauses the pipeline instead of dead-lettering every record it writes):
/// - `cluster_block_exception`: the engine takes no writes (403 for a read-only block,
///   e.g. a full disk; 503 with no cluster manager);
/// - `invalid_index_name_exception` for a name that "already exists as alias": the
///   engine did not resolve the alias the write named (seen on a node while the cluster
///   manager came back and recovered the cluster state), so it tried to create an index
///   of that name.
///
/// The rest is the document's own (`Permanent`). (2xx and a versioned 409 are not
/// failures; the sink decides those before.)
pub fn item_class(status: u16, error: Option<&Value>) -> ErrorClass {
    let kind = error.and_then(|e| e["type"].as_str()).unwrap_or_default();
    let reason = error.and_then(|e| e["reason"].as_str()).unwrap_or_default();
    match (status, kind) {
        (_, "cluster_block_exception") => ErrorClass::Unavailable,
        (_, "invalid_index_name_exception") if reason.contains("already exists as alias") => {
            ErrorClass::Unavailable
        }
        (408 | 429 | 500..=599, _) => ErrorClass::Retryable,
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
    let response = failover(|| {
        client.send(
            method,
            path,
            headers.clone(),
            None::<&()>,
            body.clone(),
            None,
        )
    })
    .await
    .map_err(|e| {
        fail(
            None,
            ErrorClass::Unavailable,
            format!("search engine unreachable: {}", error_chain(&e)),
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
    fn a_list_of_nodes_names_the_one_that_does_not_parse() {
        assert!(
            client(
                "http://127.0.0.1:9200, http://127.0.0.1:9201",
                Duration::from_secs(1)
            )
            .is_ok()
        );
        let err = client("http://127.0.0.1:9200,no url", Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("no url"), "{err}");
        assert!(client(" , ", Duration::from_secs(1)).is_err());
    }

    /// A node of two refuses connections (nothing listens on port 9): every request is
    /// answered by the other one, whichever node its turn starts at.
    #[tokio::test]
    async fn a_stopped_node_is_passed_over() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"up\":true}";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let client = client(
            &format!("http://127.0.0.1:9,http://127.0.0.1:{port}"),
            Duration::from_secs(2),
        )
        .unwrap();
        for _ in 0..6 {
            let answer = call_json(&client, Method::Get, "/", None).await.unwrap();
            assert_eq!(answer, json!({"up": true}));
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_told_apart() {
        let client = client("http://127.0.0.1:9", Duration::from_secs(2)).unwrap();
        let err = client
            .send(
                Method::Get,
                "/",
                HeaderMap::new(),
                None::<&()>,
                None::<Bytes>,
                None,
            )
            .await
            .unwrap_err();
        assert!(is_refused(&err), "{err:?}");
        let chain = error_chain(&err);
        assert!(
            chain.starts_with("error sending request for url (http://127.0.0.1:9/)")
                && chain.to_lowercase().contains("connection refused"),
            "{chain}"
        );
    }

    #[test]
    fn statuses_map_to_one_class_each() {
        for s in [404, 408, 429, 500, 503] {
            assert_eq!(request_class(s), ErrorClass::Unavailable, "{s}");
        }
        for s in [400, 401, 403, 409, 413] {
            assert_eq!(request_class(s), ErrorClass::Permanent, "{s}");
        }
        assert_eq!(item_class(429, None), ErrorClass::Retryable);
        assert_eq!(item_class(503, None), ErrorClass::Retryable);
        assert_eq!(item_class(400, None), ErrorClass::Permanent);
        assert_eq!(item_class(404, None), ErrorClass::Permanent);
    }

    /// Item errors about the index, not the document, are the engine's: the first as the
    /// cluster drills met it on a node while the cluster manager came back.
    #[test]
    fn index_errors_are_the_engines() {
        let alias = json!({"type": "invalid_index_name_exception",
            "reason": "Invalid index name [anineplus-anime], already exists as alias",
            "index": "anineplus-anime"});
        assert_eq!(item_class(400, Some(&alias)), ErrorClass::Unavailable);
        let read_only = json!({"type": "cluster_block_exception",
            "reason": "index [anineplus-anime-v1] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"});
        assert_eq!(item_class(403, Some(&read_only)), ErrorClass::Unavailable);
        let bad_name = json!({"type": "invalid_index_name_exception",
            "reason": "Invalid index name [Anime], must be lowercase"});
        assert_eq!(item_class(400, Some(&bad_name)), ErrorClass::Permanent);
        let mapping = json!({"type": "mapper_parsing_exception", "reason": "failed to parse"});
        assert_eq!(item_class(400, Some(&mapping)), ErrorClass::Permanent);
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
