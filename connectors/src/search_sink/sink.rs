//! [`SearchSink`]: splits a batch into bounded bulk requests, sends them concurrently and
//! returns one outcome per document, in input order.

use std::borrow::Borrow;

use futures::future::join_all;

use super::request::{self, BulkLimits};
use super::{BulkService, Document};
use crate::Outcome;

/// The Elasticsearch sink.
#[derive(Debug, Clone)]
pub struct SearchSink {
    service: BulkService,
    limits: BulkLimits,
}

impl SearchSink {
    /// A sink writing through `service` in requests bounded by `limits`.
    pub fn new(service: BulkService, limits: BulkLimits) -> Self {
        SearchSink { service, limits }
    }

    /// The bulk service underneath.
    pub fn service(&self) -> &BulkService {
        &self.service
    }

    /// Writes `docs`; the outcome of `docs[i]` is at `i`.
    /// Takes documents or anything holding one (`&Document`, a pipeline's own item type).
    pub async fn write<D: Borrow<Document>>(&self, docs: &[D]) -> Vec<Outcome> {
        let requests = request::build(docs, self.limits);
        let answers = join_all(requests.iter().map(|r| self.service.send(r))).await;
        let mut outcomes = Vec::with_capacity(docs.len());
        for answer in answers {
            outcomes.extend(answer);
        }
        debug_assert_eq!(outcomes.len(), docs.len());
        outcomes
    }
}
