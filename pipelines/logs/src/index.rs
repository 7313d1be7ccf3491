//! The log indices: the index template every daily index is created with, and
//! [`IndexSink`], the search sink that writes each record's document (and refuses, as a
//! dead letter, a record that has no valid day).

use anineplus_connectors::search::{self, CallError};
use anineplus_connectors::search_sink::SearchSink;
use anineplus_streams::sink::{Outcome, Sink};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::{Value, json};

use crate::documents::IndexEntry;

/// The index template of `<prefix>-*`: one shard, one replica from two nodes on and none
/// on a single node (`templates::REPLICAS`), refreshed every second (so `trace` sees a
/// request within a second or two), keyword fields for what is filtered on, a text
/// `message`, and every context field a keyword (values past 2 KiB are kept in the source,
/// not indexed; a dotted name is an object path: `log.target` is `context.log.target`).
pub fn template(prefix: &str) -> Value {
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "auto_expand_replicas": anineplus_connectors::search_sink::templates::REPLICAS,
                "refresh_interval": "1s",
                "index.mapping.total_fields.limit": 2000,
            },
            "mappings": {
                // A context value that looks like a date stays a keyword: detected as a
                // date, the next value of the field that is not one would be refused.
                "date_detection": false,
                "dynamic_templates": [{
                    "context_fields_as_keywords": {
                        "path_match": "context.*",
                        // Strings only: a dotted name (`log.target`, as tracing names the
                        // fields of a record bridged from the `log` crate) makes the
                        // engine create `context.log` as an object, which a template
                        // matching every type would map as a keyword, refusing the record.
                        "match_mapping_type": "string",
                        "mapping": { "type": "keyword", "ignore_above": 2048 },
                    },
                }],
                "properties": {
                    "@timestamp": { "type": "date" },
                    "level": { "type": "keyword" },
                    "service": { "type": "keyword" },
                    "correlationId": { "type": "keyword" },
                    "traceId": { "type": "keyword" },
                    "message": { "type": "text" },
                    "context": { "type": "object" },
                    "kafka": { "properties": {
                        "topic": { "type": "keyword" },
                        "partition": { "type": "integer" },
                        "offset": { "type": "long" },
                    } },
                },
            },
        },
    })
}

/// Puts the template of `<prefix>-*` (idempotent), and its rules for new fields
/// (`dynamic_templates`, `date_detection`) into the indices that exist: those take no new
/// template, and with the old rules today's index would go on refusing records until
/// midnight. The fields they already have keep their mappings.
pub async fn put_template(client: &Elasticsearch, prefix: &str) -> Result<(), CallError> {
    let template = template(prefix);
    search::call_json(
        client,
        Method::Put,
        &format!("/_index_template/{prefix}"),
        Some(&template),
    )
    .await?;
    let mappings = &template["template"]["mappings"];
    let rules = json!({
        "date_detection": mappings["date_detection"],
        "dynamic_templates": mappings["dynamic_templates"],
    });
    search::call_json(
        client,
        Method::Put,
        &format!("/{prefix}-*/_mapping?allow_no_indices=true&expand_wildcards=open"),
        Some(&rules),
    )
    .await
    .map(drop)
}

/// Writes log documents with the search sink; a refused record is a permanent failure
/// with its reason (a dead letter), the rest of its batch goes on.
pub struct IndexSink {
    search: SearchSink,
}

impl IndexSink {
    /// A sink writing through `search`.
    pub fn new(search: SearchSink) -> Self {
        IndexSink { search }
    }
}

impl Sink for IndexSink {
    type Item = IndexEntry;

    async fn write(&self, items: &[IndexEntry]) -> Vec<Outcome> {
        let docs: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
        let mut written = self.search.write(&docs).await.into_iter();
        items
            .iter()
            .map(|item| match item {
                Ok(_) => written.next().expect("one outcome per document"),
                Err(reason) => Outcome::Permanent(reason.clone()),
            })
            .collect()
    }

    /// Log documents never change, so the order of writes does not matter: two bulks in
    /// flight keep the engine busy while one is answered.
    fn concurrent_writes(&self) -> usize {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_covers_the_prefix_and_maps_the_fields_searches_use() {
        let t = template("logs");
        assert_eq!(t["index_patterns"], json!(["logs-*"]));
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(p["@timestamp"]["type"], "date");
        for keyword in ["level", "service", "correlationId", "traceId"] {
            assert_eq!(p[keyword]["type"], "keyword", "{keyword}");
        }
        assert_eq!(p["message"]["type"], "text");
    }
}
