//! The stats index (pipeline `analytics-index`, stateless, at least once): each
//! `anime-stats` record (read `read_committed`) becomes the document of its statistic in
//! `<prefix>-anime-stats` (`anineplus_schemas::indices::stats_index`, where the API's
//! `trendingAnime` and `subscriptionCounts` read), written whole with an external version
//! of the record's offset + 1: a statistic's records are on one partition in order, so a
//! redelivered or older record never overwrites a newer count.

use anineplus_connectors::search::{self, CallError};
use anineplus_connectors::search_sink::{Action, Document, Json, SearchSink, templates};
use anineplus_schemas::events::{AnimeStat, StatKind};
use anineplus_streams::Located;
use anineplus_streams::sink::{Outcome, Sink};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde::Serialize;
use serde_json::json;

/// The index's mapping.
pub fn mapping() -> serde_json::Value {
    json!({
        "settings": { "number_of_shards": 1, "auto_expand_replicas": templates::REPLICAS },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "kind": { "type": "keyword" },
                "animeId": { "type": "keyword" },
                "plan": { "type": "keyword" },
                "windowStart": { "type": "date", "format": "epoch_millis" },
                "windowEnd": { "type": "date", "format": "epoch_millis" },
                "count": { "type": "long" },
                "updatedAt": { "type": "date", "format": "epoch_millis" },
            }
        }
    })
}

/// Creates `index` with its mapping unless it exists.
pub async fn ensure_index(client: &Elasticsearch, index: &str) -> Result<(), CallError> {
    match search::call_json(client, Method::Put, &format!("/{index}"), Some(&mapping())).await {
        Ok(_) => Ok(()),
        Err(e) if e.status == Some(400) && e.reason.contains("resource_already_exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// A statistic's document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatDocument<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    anime_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_end: Option<i64>,
    count: i64,
    updated_at: i64,
}

/// The document write of one `anime-stats` record.
pub fn document(index: &str, record: &Located<AnimeStat>) -> Document {
    let stat = &record.value;
    let doc = StatDocument {
        kind: match stat.kind {
            StatKind::CommentsPerHour => "comments_per_hour",
            StatKind::SubscriptionsPerPlan => "subscriptions_per_plan",
        },
        anime_id: stat.anime_id.as_deref(),
        plan: stat.plan.as_deref(),
        window_start: stat.window_start,
        window_end: stat.window_end,
        count: stat.count,
        updated_at: stat.at,
    };
    Document {
        index: index.to_owned(),
        id: stat.stat_id.clone(),
        version: record.offset + 1,
        action: Action::Index(Json::of(&doc)),
    }
}

/// Writes statistic documents in versioned bulks.
pub struct StatsSink {
    search: SearchSink,
}

impl StatsSink {
    /// A sink writing through `search`.
    pub fn new(search: SearchSink) -> Self {
        StatsSink { search }
    }
}

impl Sink for StatsSink {
    type Item = Document;

    async fn write(&self, items: &[Document]) -> Vec<Outcome> {
        self.search.write(items).await
    }

    /// Versioned writes: the newest version wins whatever the order.
    fn concurrent_writes(&self) -> usize {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_statistic_is_written_whole_at_its_records_offset() {
        let stat = anineplus_schemas::events::samples::one_of_each().stats[0].clone();
        let record = Located {
            topic: Arc::from("anime-stats"),
            partition: 1,
            offset: 41,
            value: stat,
        };
        let doc = document("p-anime-stats", &record);
        assert_eq!(doc.id, "comments:anime-00000001:1764000000000");
        assert_eq!(doc.version, 42);
        let Action::Index(json) = &doc.action else {
            panic!("a whole document")
        };
        let value: serde_json::Value = serde_json::from_str(json.as_str()).unwrap();
        assert_eq!(value["kind"], "comments_per_hour");
        assert_eq!(value["count"], 3);
        assert_eq!(value["windowStart"], 1_764_000_000_000_i64);
        assert!(value.get("plan").is_none());
    }
}
