//! The comparison: each side as entries (version, deleted flag, denormalised digest),
//! [`compare`] (pure) and [`SearchSync::verify`], safe under live writes.

use std::collections::BTreeMap;

use anineplus_indexer::indices::Index;
use serde_json::Value;

use crate::{Result, SearchSync};

/// One side's view of an entity: its version, whether it is deleted, and a digest of
/// its denormalised values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `version` (PostgreSQL) or `aggregateVersion` (index).
    pub version: i64,
    /// Soft-deleted row, or tombstone document.
    pub deleted: bool,
    /// The denormalised values the document should hold (from PostgreSQL) or holds: an
    /// anime's live episode count, a comment's anime title (hashed). `None` on a row when
    /// nothing is expected (a deleted anime's comments keep their last title).
    pub denormalised: Option<u64>,
}

/// The digest of a comment's anime title (compared within one run only).
pub(crate) fn title_digest(title: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    title.hash(&mut hasher);
    hasher.finish()
}

/// The document fields [`document_entry`] reads.
pub(crate) const ENTRY_FIELDS: [&str; 4] =
    ["aggregateVersion", "deleted", "episodeCount", "animeTitle"];

/// A document's entry from its `_source` (of at least [`ENTRY_FIELDS`]).
pub(crate) fn document_entry(index: Index, source: &Value) -> Entry {
    Entry {
        version: source["aggregateVersion"].as_i64().unwrap_or(0),
        deleted: source["deleted"].as_bool().unwrap_or(false),
        denormalised: match index {
            Index::Anime => Some(source["episodeCount"].as_u64().unwrap_or(0)),
            Index::Comments => source["animeTitle"].as_str().map(title_digest),
            _ => None,
        },
    }
}

/// What differs between PostgreSQL and one index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// The index (alias or concrete) compared.
    pub target: String,
    /// Rows in PostgreSQL (live and deleted).
    pub rows: usize,
    /// Documents in the index (live and tombstones).
    pub documents: usize,
    /// Rows with no document (a deleted row should have its tombstone).
    pub missing: Vec<String>,
    /// Documents older than their row, or live while the row is deleted.
    pub stale: Vec<String>,
    /// Live documents with no row: they should be tombstones.
    pub orphaned: Vec<String>,
    /// Documents newer than their row (a restored database?): reported, not repaired.
    pub ahead: Vec<String>,
    /// Documents at their row's version whose denormalised values differ (an anime's
    /// episode count, a comment's anime title): their entries are written again.
    pub denormalised: Vec<String>,
}

impl Drift {
    /// Whether the index matches PostgreSQL.
    pub fn in_sync(&self) -> bool {
        self.missing.is_empty()
            && self.stale.is_empty()
            && self.orphaned.is_empty()
            && self.ahead.is_empty()
            && self.denormalised.is_empty()
    }

    /// Every id with a difference of any kind.
    pub(crate) fn drifted(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .to_write()
            .into_iter()
            .chain(self.orphaned.iter().cloned())
            .chain(self.ahead.iter().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Ids to write from PostgreSQL (missing, stale, denormalised values off).
    pub(crate) fn to_write(&self) -> Vec<String> {
        self.missing
            .iter()
            .chain(&self.stale)
            .chain(&self.denormalised)
            .cloned()
            .collect()
    }
}

/// Compares the two sides. Pure.
pub fn compare(
    target: &str,
    rows: &BTreeMap<String, Entry>,
    docs: &BTreeMap<String, Entry>,
) -> Drift {
    let mut drift = Drift {
        target: target.to_owned(),
        rows: rows.len(),
        documents: docs.len(),
        ..Drift::default()
    };
    for (id, row) in rows {
        match docs.get(id) {
            None => drift.missing.push(id.clone()),
            Some(doc) if doc.version < row.version => drift.stale.push(id.clone()),
            Some(doc) if doc.version > row.version => drift.ahead.push(id.clone()),
            Some(doc) if doc.deleted != row.deleted => drift.stale.push(id.clone()),
            Some(doc) if row.denormalised.is_some() && doc.denormalised != row.denormalised => {
                drift.denormalised.push(id.clone());
            }
            Some(_) => {}
        }
    }
    for (id, doc) in docs {
        if !doc.deleted && !rows.contains_key(id) {
            drift.orphaned.push(id.clone());
        }
    }
    drift
}

impl SearchSync {
    /// Compares PostgreSQL with the alias of `index`.
    pub async fn verify(&self, index: Index) -> Result<Drift> {
        Self::check(index)?;
        self.verify_target(index, &index.alias(&self.prefix)).await
    }

    /// Compares PostgreSQL with `target` (the alias of `index`, or one of its generations).
    ///
    /// Safe under live writes. The scans take a while: rows first, then documents, so an
    /// entity written in between has a document newer than the row read (or no row read at
    /// all) and would look *ahead* (or *orphaned*, and a repair would tombstone a live
    /// entity at its own version). So every id found drifted is read again, its document
    /// first (a realtime `_mget`) and its row after: a document is only written once its
    /// row is committed, so a row read after its document is at least as new. What is
    /// still orphaned or ahead then really is; what is still missing or stale may be the
    /// indexer's lag, and writing it from its row is harmless (versioned writes: the newer
    /// state wins either way).
    pub async fn verify_target(&self, index: Index, target: &str) -> Result<Drift> {
        self.refresh(target).await?;
        let rows = self.rows(index).await?;
        let docs = self.documents(index, target).await?;
        let mut drift = compare(target, &rows, &docs);
        if !drift.in_sync() {
            let ids = drift.drifted();
            let docs = self.documents_by_id(index, target, &ids).await?;
            let rows: BTreeMap<String, Entry> = self
                .rows_by_id(index, &ids)
                .await?
                .into_iter()
                .map(|(id, entry, _)| (id, entry))
                .collect();
            drift = Drift {
                rows: drift.rows,
                documents: drift.documents,
                ..compare(target, &rows, &docs)
            };
        }
        self.note(format_args!(
            "{target}: {} rows, {} documents; missing {}, stale {}, orphaned {}, ahead {}, \
             denormalised {}",
            drift.rows,
            drift.documents,
            drift.missing.len(),
            drift.stale.len(),
            drift.orphaned.len(),
            drift.ahead.len(),
            drift.denormalised.len()
        ));
        Ok(drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, i64, bool)]) -> BTreeMap<String, Entry> {
        entries
            .iter()
            .map(|(id, version, deleted)| {
                (
                    (*id).to_owned(),
                    Entry {
                        version: *version,
                        deleted: *deleted,
                        denormalised: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn compare_classifies_every_kind_of_drift() {
        let rows = map(&[
            ("same", 2, false),
            ("tomb", 3, true),
            ("missing", 1, false),
            ("missing-tomb", 2, true),
            ("stale", 3, false),
            ("live-but-deleted", 2, true),
            ("ahead", 1, false),
        ]);
        let docs = map(&[
            ("same", 2, false),
            ("tomb", 3, true),
            ("stale", 2, false),
            ("live-but-deleted", 2, false),
            ("ahead", 2, false),
            ("orphan", 5, false),
            ("orphan-tomb", 5, true),
        ]);
        let drift = compare("p-anime", &rows, &docs);
        assert_eq!(drift.missing, ["missing", "missing-tomb"]);
        assert_eq!(drift.stale, ["live-but-deleted", "stale"]);
        assert_eq!(drift.orphaned, ["orphan"]);
        assert_eq!(drift.ahead, ["ahead"]);
        assert_eq!((drift.rows, drift.documents), (7, 7));
        assert!(!drift.in_sync());
        assert!(compare("p-anime", &rows, &rows).in_sync());
    }

    #[test]
    fn denormalised_values_are_compared_when_the_row_expects_some() {
        let entry = |denormalised| Entry {
            version: 2,
            deleted: false,
            denormalised,
        };
        let rows = BTreeMap::from([
            ("count-off".to_owned(), entry(Some(3))),
            ("count-ok".to_owned(), entry(Some(2))),
            ("no-title-expected".to_owned(), entry(None)),
        ]);
        let docs = BTreeMap::from([
            ("count-off".to_owned(), entry(Some(2))),
            ("count-ok".to_owned(), entry(Some(2))),
            (
                "no-title-expected".to_owned(),
                entry(Some(title_digest("old"))),
            ),
        ]);
        let drift = compare("x", &rows, &docs);
        assert_eq!(drift.denormalised, vec!["count-off".to_owned()]);
        assert!(!drift.in_sync());
        assert_eq!(drift.to_write(), vec!["count-off".to_owned()]);
    }
}
