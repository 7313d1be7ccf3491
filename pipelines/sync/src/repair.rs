//! Repair: the drifted documents written from their rows, orphans as tombstones, at the
//! row's version (a concurrent indexer writing a newer event still wins).

use anineplus_connectors::search_sink::Document;
use anineplus_indexer::indices::Index;

use crate::drift::Drift;
use crate::{Result, SearchSync};

/// What a repair wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Documents written (or already newer in the index: a concurrent indexer won).
    pub written: usize,
    /// Documents the engine refused, with its reasons.
    pub failed: Vec<String>,
}

impl SearchSync {
    /// Writes what `drift` lists (missing, stale, orphaned) into its target.
    pub async fn repair(&self, index: Index, drift: &Drift) -> Result<Repaired> {
        Self::check(index)?;
        let mut docs: Vec<Document> = self
            .rows_by_id(index, &drift.to_write())
            .await?
            .into_iter()
            .flat_map(|(_, _, d)| d)
            .collect();
        let orphans = self.documents_of(&drift.target, &drift.orphaned).await?;
        docs.extend(
            orphans
                .into_iter()
                .map(|(id, version)| self.docs.tombstone_of(index, &id, version)),
        );
        self.retarget(index, &mut docs, &drift.target);
        // The row's state wins over a document at the same version too (e.g. a wrong
        // tombstone); a newer document (a concurrent event) still wins.
        let docs: Vec<Document> = docs.into_iter().map(Document::overwriting_equal).collect();
        let repaired = self.write(&drift.target, &docs).await?;
        self.note(format_args!(
            "{}: repaired {} documents, {} failed",
            drift.target,
            repaired.written,
            repaired.failed.len()
        ));
        Ok(repaired)
    }

    /// Points the writes meant for `index`'s alias at `target` (a generation being built,
    /// or the alias itself); writes to other indices (an episode's entry on its anime) stay.
    pub(crate) fn retarget(&self, index: Index, docs: &mut [Document], target: &str) {
        let alias = index.alias(&self.prefix);
        for doc in docs.iter_mut().filter(|d| d.index == alias) {
            doc.index = target.to_owned();
        }
    }
}
