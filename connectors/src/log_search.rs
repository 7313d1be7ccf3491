//! Finding log records in log storage (the daily indices the log pipeline writes,
//! `<prefix>-*`): one query shape for the `anineplus-logs trace` command and the API's
//! `logs` query. Records come back in time order (`@timestamp`, then partition and offset,
//! which also breaks ties within a millisecond), and a page's last sort key continues it
//! (`search_after`), which is how `--follow` tails.

use std::collections::BTreeMap;

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::search::{self, CallError};

/// The levels, lowest first, as records spell them.
pub const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// Which records to find.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// Only this request's records.
    pub correlation_id: Option<String>,
    /// Only this service's records.
    pub service: Option<String>,
    /// Only records at this level or above (one of [`LEVELS`], any case).
    pub min_level: Option<String>,
    /// Only records logged at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Only records after this sort key (the `sort` of the last record of a page).
    pub after: Option<Vec<Value>>,
    /// At most this many records.
    pub size: usize,
}

/// A query that cannot be run as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?}: one of TRACE, DEBUG, INFO, WARN, ERROR")]
pub struct UnknownLevel(pub String);

impl LogQuery {
    /// The levels the query keeps, or which level it does not know.
    pub fn levels(&self) -> Result<Option<Vec<&'static str>>, UnknownLevel> {
        let Some(min) = &self.min_level else {
            return Ok(None);
        };
        let upper = min.to_ascii_uppercase();
        let at = LEVELS
            .iter()
            .position(|l| *l == upper)
            .ok_or_else(|| UnknownLevel(min.clone()))?;
        Ok(Some(LEVELS[at..].to_vec()))
    }

    /// The `_search` body.
    pub fn body(&self) -> Result<Value, UnknownLevel> {
        let mut filter = Vec::new();
        if let Some(id) = &self.correlation_id {
            filter.push(json!({ "term": { "correlationId": id } }));
        }
        if let Some(service) = &self.service {
            filter.push(json!({ "term": { "service": service } }));
        }
        if let Some(levels) = self.levels()? {
            filter.push(json!({ "terms": { "level": levels } }));
        }
        if let Some(since) = self.since {
            filter.push(
                json!({ "range": { "@timestamp": { "gte": since, "format": "epoch_millis" } } }),
            );
        }
        let mut body = json!({
            "query": { "bool": { "filter": filter } },
            "sort": [
                { "@timestamp": "asc" },
                { "kafka.partition": "asc" },
                { "kafka.offset": "asc" },
            ],
            "size": self.size,
        });
        if let Some(after) = &self.after {
            body["search_after"] = json!(after);
        }
        Ok(body)
    }
}

/// One record found.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogHit {
    /// RFC 3339, UTC.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// `TRACE` … `ERROR`.
    pub level: String,
    /// The service that logged it.
    pub service: String,
    /// The request's correlation id.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The message.
    pub message: String,
    /// The structured fields.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// The sort key: pass the last one as [`LogQuery::after`] for the next page.
    #[serde(skip)]
    pub sort: Vec<Value>,
}

/// Why a log search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query names an unknown level.
    #[error(transparent)]
    Query(#[from] UnknownLevel),
    /// The engine refused or could not be reached.
    #[error(transparent)]
    Engine(#[from] CallError),
    /// The engine's answer is not a search response.
    #[error("unexpected search response: {0}")]
    Response(String),
}

/// The records of the log indices under `prefix` that `query` selects, in time order.
/// No index yet (nothing logged under the prefix) is an empty answer.
pub async fn find(
    client: &Elasticsearch,
    prefix: &str,
    query: &LogQuery,
) -> Result<Vec<LogHit>, SearchError> {
    let body = query.body()?;
    let path = format!("/{prefix}-*/_search?ignore_unavailable=true&allow_no_indices=true");
    let answer = search::call_json(client, Method::Post, &path, Some(&body)).await?;
    let hits = answer["hits"]["hits"]
        .as_array()
        .ok_or_else(|| SearchError::Response(answer.to_string()))?;
    hits.iter()
        .map(|hit| {
            let mut found: LogHit = serde_json::from_value(hit["_source"].clone())
                .map_err(|e| SearchError::Response(format!("{e}: {hit}")))?;
            found.sort = hit["sort"].as_array().cloned().unwrap_or_default();
            Ok(found)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_filters_by_request_service_level_and_time_in_time_order() {
        let q = LogQuery {
            correlation_id: Some("c-1".into()),
            service: Some("api".into()),
            min_level: Some("warn".into()),
            since: Some(1000),
            after: Some(vec![json!(5), json!(0), json!(7)]),
            size: 50,
        };
        let body = q.body().unwrap();
        let filter = &body["query"]["bool"]["filter"];
        assert_eq!(filter[0], json!({"term": {"correlationId": "c-1"}}));
        assert_eq!(filter[1], json!({"term": {"service": "api"}}));
        assert_eq!(filter[2], json!({"terms": {"level": ["WARN", "ERROR"]}}));
        assert_eq!(filter[3]["range"]["@timestamp"]["gte"], json!(1000));
        assert_eq!(body["sort"][0], json!({"@timestamp": "asc"}));
        assert_eq!(body["search_after"], json!([5, 0, 7]));
        assert_eq!(body["size"], json!(50));
    }

    #[test]
    fn an_unknown_level_is_named() {
        let q = LogQuery {
            min_level: Some("loud".into()),
            ..LogQuery::default()
        };
        assert_eq!(q.body().unwrap_err(), UnknownLevel("loud".into()));
    }
}
