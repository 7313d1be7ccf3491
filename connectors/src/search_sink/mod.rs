//! The Elasticsearch sink: versioned bulk writes whose response is read item by item.
//!
//! Layered like every connector (`STYLE.md` §6):
//! - [`request`]: pure. Turns [`Document`]s into NDJSON bulk bodies bounded by count and
//!   bytes, and reads a bulk response back into one [`crate::Outcome`] per document.
//! - [`retry`]: pure. The policy: which item status is done, already applied, worth
//!   retrying, or permanent.
//! - [`service`]: the I/O. Sends one bulk body and turns the answer (or the transport
//!   error) into outcomes.
//! - [`templates`]: index templates and the alias → index layout, put at start.
//! - [`sink`]: [`SearchSink`], the sink the pipelines runtime drives.
//!
//! Idempotency comes from external versioning: every document is written with
//! `version = aggregateVersion` and `version_type=external_gte`, so a duplicate is
//! rewritten identically and an older version gets a 409, which counts as
//! [`crate::Outcome::AlreadyApplied`]. Deletes are *soft*: a document `{"deleted": true}` at the
//! delete's version, so a late, older update is refused with a 409 instead of resurrecting
//! the entity. Searches must filter those out: [`live`] wraps a query to do so.
//!
//! Events that carry only part of an entity (a moderation, a membership change) become
//! [`Action::Update`]s: a painless script guarded by the stored `aggregateVersion`, so an
//! older or repeated partial event is a no-op. An update bumps the internal `_version` by
//! one, which equals the event's version when versions are contiguous, so later external
//! writes and 409s for older ones keep working. A 409 on an update is something else: a
//! concurrency conflict (another write won the race, `retry_on_conflict` times), retried
//! ([`retry::item_outcome`]).
//!
//! Indices with *denormalised* fields (data of another entity, written by that entity's
//! events) cannot use external versions at all: those writes bump `_version` without
//! changing `aggregateVersion`. Their documents are written with [`Document::replace`]
//! (an [`Action::Update`] that replaces the entity's own fields and keeps the named
//! denormalised ones, guarded by `aggregateVersion`) and the denormalised fields with
//! [`Action::Script`]s that carry their own guard (e.g. a per-source version). Scripts
//! take every value from `params`, so each kind of write compiles once (the engine limits
//! script compilations per minute).
//!
//! Only APIs common to OpenSearch 2.x and Elasticsearch 8 are used (`_bulk`,
//! `_index_template`, index creation with aliases).

pub mod request;
pub mod retry;
pub mod service;
pub mod sink;
pub mod templates;

pub use request::BulkLimits;
pub use service::BulkService;
pub use sink::SearchSink;
pub use templates::IndexSpec;

use serde_json::{Value, json};

/// The field that marks a soft-deleted document.
pub const DELETED_FIELD: &str = "deleted";
/// The field holding the entity's version in every document.
pub const VERSION_FIELD: &str = "aggregateVersion";

/// One versioned write of document `id` in `index` (an alias) at `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The index or write alias.
    pub index: String,
    /// The document id (the entity id).
    pub id: String,
    /// The entity version (the event's `aggregateVersion`).
    pub version: i64,
    /// What to write.
    pub action: Action,
}

/// The kind of write.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The whole document, written with `version_type=external_gte`.
    Index(Value),
    /// A partial change: `script` (painless) runs with `params` plus `params.version`, only
    /// when the stored `aggregateVersion` is older; it upserts an empty document first.
    Update {
        /// The painless statements applying the change to `ctx._source`.
        script: String,
        /// Its parameters.
        params: Value,
    },
    /// A change that guards itself: `script` (painless) runs with `params` plus
    /// `params.documentId` on the stored document (an empty one when missing), with no
    /// version check around it. For denormalised fields, whose versions are not the
    /// document's own.
    Script {
        /// The painless statements; set `ctx.op = 'none'` to leave the document as is.
        script: String,
        /// Its parameters.
        params: Value,
    },
}

impl Document {
    /// A whole-document write.
    pub fn index(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        source: Value,
    ) -> Self {
        Document {
            index: index.into(),
            id: id.into(),
            version,
            action: Action::Index(source),
        }
    }

    /// The soft-delete tombstone of `id` at `version`: a late older write gets a 409.
    pub fn soft_delete(index: impl Into<String>, id: impl Into<String>, version: i64) -> Self {
        let id = id.into();
        let source = tombstone(&id, version);
        Document::index(index, id, version, source)
    }

    /// A partial change merging `fields` into the stored document.
    pub fn merge(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        fields: Value,
    ) -> Self {
        Document {
            index: index.into(),
            id: id.into(),
            version,
            action: Action::Update {
                script: "ctx._source.putAll(params.fields)".into(),
                params: json!({ "fields": fields }),
            },
        }
    }

    /// The whole document `source` at `version`, as a version-guarded scripted upsert that
    /// keeps the stored values of the fields named in `keep` (denormalised fields written
    /// by other entities' events). A tombstone is a `source` with `deleted: true`.
    pub fn replace(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        source: Value,
        keep: &[&str],
    ) -> Self {
        Document {
            index: index.into(),
            id: id.into(),
            version,
            action: Action::Update {
                script: REPLACE_KEEPING.into(),
                params: json!({ "source": source, "keep": keep }),
            },
        }
    }

    /// The same write, applied over a stored document at the *same* version too (not only
    /// an older one): what a repair from the source of truth needs, e.g. to turn a wrong
    /// tombstone back into the live document at its version. External versions
    /// (`external_gte`) already accept an equal version.
    pub fn overwriting_equal(self) -> Document {
        let action = match self.action {
            Action::Update { script, mut params } => {
                params["version"] = self.version.into();
                Action::Script {
                    script: version_guarded(&script, true),
                    params,
                }
            }
            other => other,
        };
        Document { action, ..self }
    }
}

/// `script` guarded by the stored `aggregateVersion`: it runs when the stored version is
/// older than `params.version` (or also equal, with `overwrite_equal`), then sets the
/// version and `id` (`params.documentId`).
pub(crate) fn version_guarded(script: &str, overwrite_equal: bool) -> String {
    let newer = if overwrite_equal { ">" } else { ">=" };
    format!(
        "if (ctx._source.{VERSION_FIELD} != null && ctx._source.{VERSION_FIELD} {newer} params.version) \
         {{ ctx.op = 'none' }} else {{ {script}; ctx._source.{VERSION_FIELD} = params.version; \
         ctx._source.id = params.documentId }}"
    )
}

/// Replaces `ctx._source` with `params.source`, keeping the fields listed in `params.keep`.
const REPLACE_KEEPING: &str = "def kept = [:]; \
     for (k in params.keep) { if (ctx._source.containsKey(k)) { kept[k] = ctx._source[k] } } \
     ctx._source.clear(); ctx._source.putAll(params.source); ctx._source.putAll(kept)";

/// The source of the soft-delete tombstone of `id` at `version`.
pub fn tombstone(id: &str, version: i64) -> Value {
    json!({ "id": id, DELETED_FIELD: true, VERSION_FIELD: version })
}

/// Wraps `query` so that soft-deleted documents never match.
pub fn live(query: Value) -> Value {
    json!({ "bool": { "must": [query], "must_not": [{ "term": { DELETED_FIELD: true } }] } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_carry_their_version_and_live_queries_exclude_them() {
        let doc = Document::soft_delete("a", "x", 7);
        let Action::Index(source) = doc.action else {
            panic!()
        };
        assert_eq!(source["deleted"], json!(true));
        assert_eq!(source["aggregateVersion"], json!(7));
        let q = live(json!({"match_all": {}}));
        assert_eq!(q["bool"]["must_not"][0]["term"]["deleted"], json!(true));
    }
}
