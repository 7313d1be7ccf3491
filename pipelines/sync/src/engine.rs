//! The engine side: raw HTTP calls to the search engine (scans with `search_after`,
//! realtime `_mget`, refreshes, aliases) and the bulk writes of repaired documents.

use std::collections::BTreeMap;
use std::time::Duration;

use anineplus_connectors::search_sink::{BulkLimits, BulkService, Document, SearchSink};
use anineplus_connectors::{Outcome, search};
use anineplus_indexer::indices::Index;
use elasticsearch::http::Method;
use serde_json::{Value, json};

use crate::drift::{ENTRY_FIELDS, Entry, document_entry};
use crate::repair::Repaired;
use crate::{Error, PROGRESS_EVERY, Result, SearchSync};

impl SearchSync {
    /// One request to the engine ([`search::call_json`]: its one status mapping).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        Ok(search::call_json(&self.search, method, path, body).await?)
    }

    /// Every document of `target` (alias or index): id → entry.
    pub(crate) async fn documents(
        &self,
        index: Index,
        target: &str,
    ) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": self.batch,
                "sort": [{ "id": "asc" }],
                "_source": ENTRY_FIELDS,
                "query": { "match_all": {} },
            });
            if let Some(after) = &after {
                body["search_after"] = after.clone();
            }
            let page = self
                .call(Method::Post, &format!("/{target}/_search"), Some(&body))
                .await?;
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            let before = out.len() / PROGRESS_EVERY;
            for hit in &hits {
                let id = hit["_id"].as_str().unwrap_or_default().to_owned();
                out.insert(id, document_entry(index, &hit["_source"]));
            }
            if out.len() / PROGRESS_EVERY > before {
                self.note(format_args!("  index {target}: {} documents", out.len()));
            }
            match hits.last() {
                Some(last) if hits.len() == self.batch => after = Some(last["sort"].clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The documents of `target` with `ids`, as they are now (a realtime `_mget`, which
    /// needs no refresh).
    pub(crate) async fn documents_by_id(
        &self,
        index: Index,
        target: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, Entry>> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(self.batch.max(1)) {
            let body = json!({ "ids": chunk });
            let path = format!(
                "/{target}/_mget?realtime=true&_source_includes={}",
                ENTRY_FIELDS.join(",")
            );
            let answer = self.call(Method::Post, &path, Some(&body)).await?;
            for doc in answer["docs"].as_array().into_iter().flatten() {
                if let (Some(id), true) = (doc["_id"].as_str(), doc["found"] == json!(true)) {
                    out.insert(id.to_owned(), document_entry(index, &doc["_source"]));
                }
            }
        }
        Ok(out)
    }

    /// The `aggregateVersion` of each of `ids` in `target`.
    pub(crate) async fn documents_of(
        &self,
        target: &str,
        ids: &[String],
    ) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(self.batch.max(1)) {
            let body = json!({ "ids": chunk });
            let answer = self
                .call(Method::Post, &format!("/{target}/_mget"), Some(&body))
                .await?;
            for doc in answer["docs"].as_array().cloned().unwrap_or_default() {
                if let (Some(id), Some(v)) = (
                    doc["_id"].as_str(),
                    doc["_source"]["aggregateVersion"].as_i64(),
                ) {
                    out.push((id.to_owned(), v));
                }
            }
        }
        Ok(out)
    }

    /// Writes `docs`; counts the documents of `target` written (an entity and its
    /// denormalised entries count once), and lists every refused write.
    pub(crate) async fn write(&self, target: &str, docs: &[Document]) -> Result<Repaired> {
        let sink = SearchSink::new(
            BulkService::new(self.search.clone()),
            BulkLimits {
                max_docs: self.batch.max(1),
                max_bytes: 5 * 1024 * 1024,
            },
        );
        let mut repaired = Repaired::default();
        let mut written = std::collections::BTreeSet::new();
        // Items refused retryably (a scripted update that lost a race with the indexer, a
        // rejected item) are written again, a few times.
        let mut pending: Vec<&Document> = docs.iter().collect();
        for attempt in 1..=4 {
            let outcomes = sink.write(&pending).await;
            let mut again = Vec::new();
            for (doc, outcome) in pending.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Done | Outcome::AlreadyApplied => {
                        if doc.index == target {
                            written.insert(doc.id.as_str());
                        }
                    }
                    Outcome::Unavailable(e) => return Err(Error::Unavailable(e)),
                    Outcome::Retry(_) if attempt < 4 => again.push(doc),
                    Outcome::Retry(e) | Outcome::Permanent(e) => {
                        repaired
                            .failed
                            .push(format!("{}/{}: {e}", doc.index, doc.id));
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            pending = again;
        }
        repaired.written = written.len();
        Ok(repaired)
    }

    pub(crate) async fn refresh(&self, target: &str) -> Result<()> {
        self.call(Method::Post, &format!("/{target}/_refresh"), None)
            .await
            .map(|_| ())
    }

    /// The concrete indices the alias of `index` points at.
    pub async fn generations(&self, index: Index) -> Result<Vec<String>> {
        let alias = index.alias(&self.prefix);
        let answer = self
            .call(Method::Get, &format!("/_alias/{alias}"), None)
            .await?;
        let mut names: Vec<String> = answer
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }
}
