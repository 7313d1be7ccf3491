//! The [`Sink`] trait: where a topology's items end up.

use std::future::Future;

pub use anineplus_connectors::Outcome;
use anineplus_connectors::search_sink::{Document, SearchSink};

/// A destination that writes batches and answers per item.
///
/// `write` must return exactly one [`Outcome`] per item, in order. The runtime retries the
/// `Retry` items alone, so writes must be idempotent (versioned, upserts, ...).
pub trait Sink: Send + Sync + 'static {
    /// What the sink writes.
    type Item: Clone + Send + Sync + 'static;

    /// Writes `items`; the outcome of `items[i]` is at `i`.
    fn write(&self, items: &[Self::Item]) -> impl Future<Output = Vec<Outcome>> + Send;
}

impl Sink for SearchSink {
    type Item = Document;

    fn write(&self, items: &[Document]) -> impl Future<Output = Vec<Outcome>> + Send {
        SearchSink::write(self, items)
    }
}
