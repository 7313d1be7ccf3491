//! [`SearchWriter`]: connectors' [`SearchSink`] as a streams [`Sink`], the plain search
//! sink without the indexer's follow-up writes (a local type: neither the trait nor the
//! sink is this crate's own).

use anineplus_connectors::Outcome;
use anineplus_connectors::search_sink::{Document, SearchSink};
use anineplus_streams::sink::Sink;

/// Writes documents with one bulk request per batch, nothing else.
pub struct SearchWriter(pub SearchSink);

impl Sink for SearchWriter {
    type Item = Document;

    async fn write(&self, items: &[Document]) -> Vec<Outcome> {
        self.0.write(items).await
    }
}
