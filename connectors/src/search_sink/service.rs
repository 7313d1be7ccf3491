//! The I/O of the search sink: one bulk request in, one outcome per document out.

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;

use super::request::{self, BulkRequest};
use crate::{Outcome, search};

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

    /// Sends `request`; a transport failure or a failed request gives every document of it
    /// the outcome of the [`search::CallError`] (the one status mapping, [`search::request_class`]).
    pub async fn send(&self, request: &BulkRequest) -> Vec<Outcome> {
        let n = request.docs.len();
        match search::call(
            &self.client,
            Method::Post,
            // Only what `read_response` reads: a 1,000-item answer shrinks from ~200 bytes
            // an item to ~30, which the engine then neither builds nor sends.
            "/_bulk?filter_path=items.*.status,items.*.error",
            "application/x-ndjson",
            Some(request.body.clone()),
        )
        .await
        {
            Ok((_, body)) => request::read_response(&body, n),
            Err(e) => vec![e.outcome(); n],
        }
    }
}
