//! The I/O of the search sink: one bulk request in, one outcome per document out.

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::request::{self, BulkRequest};
use super::retry;
use crate::Outcome;

/// Sends bulk bodies to one engine.
#[derive(Debug, Clone)]
pub struct BulkService {
    client: Elasticsearch,
}

impl BulkService {
    /// A service over `client`.
    pub fn new(client: Elasticsearch) -> Self {
        BulkService { client }
    }

    /// The client, for the index set-up and tests.
    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    /// Sends `request`; a transport failure or a failed request makes every document of it
    /// retryable or permanent as [`retry::request_outcome`] says.
    pub async fn send(&self, request: &BulkRequest) -> Vec<Outcome> {
        let n = request.docs.len();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        let response = self
            .client
            .send(
                Method::Post,
                "/_bulk",
                headers,
                None::<&()>,
                Some(request.body.clone()),
                None,
            )
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return vec![Outcome::Unavailable(format!("search engine unreachable: {e}")); n];
            }
        };
        let status = response.status_code().as_u16();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                return vec![Outcome::Unavailable(format!("reading the bulk response: {e}")); n];
            }
        };
        if status == 200 {
            request::read_response(&body, n)
        } else {
            vec![retry::request_outcome(status, &String::from_utf8_lossy(&body)); n]
        }
    }
}
