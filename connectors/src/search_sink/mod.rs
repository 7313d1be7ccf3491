//! The Elasticsearch sink: versioned bulk writes whose response is read item by item.
//!
//! Layered like every connector:
//! - [`request`]: pure. Turns [`Document`]s into NDJSON bulk bodies bounded by count and
//!   bytes, and reads a bulk response back into one [`crate::Outcome`] per document.
//! - [`retry`]: pure. The policy: which item status is done, already applied, worth
//!   retrying, or permanent (the classes from [`crate::search::item_class`]).
//! - [`service`]: the I/O. Sends one bulk body through [`crate::search::call`] and turns
//!   the answer (or the failed call) into outcomes; the engine is asked for each item's
//!   status and error only (`filter_path`), all that is read of it.
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
//! Entities that have partial events as well as whole-state ones are written field by field
//! ([`Document::fields`]): each field (and each entry of a keyed collection, say members)
//! carries the version it is from and is set only over an older one, so the order in
//! which events arrive does not matter; a tombstone clears the fields and makes older
//! writes no-ops.
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

use std::sync::{Arc, LazyLock, OnceLock};

use serde::Serialize;
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

/// The kind of write. Every JSON part is serialised once, when the document is made
/// ([`Json`]): the bulk body only copies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The whole document, written with `version_type=external_gte`.
    Index(Json),
    /// A partial change: `script` (painless) runs with `params`, only when the stored
    /// `aggregateVersion` is older than `params.version`; it upserts an empty document
    /// first. `params` holds `documentId` and `version` (the document's).
    Update {
        /// The painless statements applying the change to `ctx._source`.
        script: Script,
        /// Its parameters.
        params: Json,
    },
    /// A change that guards itself: `script` (painless) runs with `params` on the stored
    /// document (an empty one when missing), with no version check around it. For
    /// denormalised fields, whose versions are not the document's own. `params` holds
    /// `documentId`.
    Script {
        /// The painless statements; set `ctx.op = 'none'` to leave the document as is.
        script: Script,
        /// Its parameters.
        params: Json,
    },
}

/// A JSON object as compact text, serialised once (from a typed struct on the hot path,
/// or from a `serde_json::Value`) and shared, never rebuilt: what a bulk body carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Json(Arc<str>);

impl Json {
    /// `value` serialised.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Json {
        let text = serde_json::to_string(value).expect("a document serialises to JSON");
        Json(text.into())
    }

    /// Text that is already compact JSON (an object), taken as is.
    pub fn from_text(text: String) -> Json {
        Json(text.into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text parsed back into a tree: for inspection (tests, repairs), never the write
    /// path.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).expect("Json holds valid JSON")
    }

    /// Changes the object through its tree: the slow path of rare writes (membership
    /// entries, repairs).
    pub fn edit(&mut self, change: impl FnOnce(&mut Value)) {
        let mut value = self.value();
        change(&mut value);
        *self = Json::of(&value);
    }
}

impl std::fmt::Debug for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A painless script: its source, and that source as a JSON string (quoted, escaped)
/// made once instead of once per document. Scripts are a handful of constants; clones
/// share the text.
#[derive(Clone)]
pub struct Script(Arc<ScriptText>);

struct ScriptText {
    source: String,
    json: String,
    /// The JSON string of the version-guarded form ([`version_guarded`]), for
    /// [`Action::Update`]s: made on first use.
    guarded: OnceLock<String>,
}

impl Script {
    /// The script `source`.
    pub fn new(source: impl Into<String>) -> Script {
        let source = source.into();
        let json = serde_json::to_string(&source).expect("a string serialises");
        Script(Arc::new(ScriptText {
            source,
            json,
            guarded: OnceLock::new(),
        }))
    }

    /// The painless source.
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// The source as a JSON string.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// The version-guarded form of the source as a JSON string (what an
    /// [`Action::Update`] sends).
    pub fn guarded_json(&self) -> &str {
        self.0.guarded.get_or_init(|| {
            serde_json::to_string(&version_guarded(&self.0.source, false))
                .expect("a string serialises")
        })
    }
}

impl PartialEq for Script {
    fn eq(&self, other: &Script) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.source == other.0.source
    }
}

impl PartialEq<&str> for Script {
    fn eq(&self, other: &&str) -> bool {
        self.0.source == *other
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Script").field(&self.0.source).finish()
    }
}

/// The params of [`Document::replace`], keys in sorted order (as a `serde_json` object
/// writes them: the body is the same however it was made).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplaceParams<'a, S> {
    document_id: &'a str,
    keep: &'a [&'a str],
    source: S,
    version: i64,
}

/// The params of [`Document::fields`], keys in sorted order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldsParams<'a, F> {
    document_id: &'a str,
    entries: [(); 0],
    equal: bool,
    fields: F,
    keep: &'a [&'a str],
    tombstone: bool,
    version: i64,
}

/// The source of a soft-delete tombstone, keys in sorted order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone<'a> {
    /// The delete's version.
    pub aggregate_version: i64,
    /// Always `true`.
    pub deleted: bool,
    /// The document id.
    pub id: &'a str,
    /// When the delete happened (epoch ms), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

static FIELDS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FIELDS));
static REPLACE_KEEPING_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REPLACE_KEEPING));
static MERGE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new("ctx._source.putAll(params.fields)"));

impl Document {
    /// A whole-document write of `source` (an object: a typed struct, or a `Value`).
    pub fn index(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        source: impl Serialize,
    ) -> Self {
        Document::write(index, id, version, Action::Index(Json::of(&source)))
    }

    /// A whole-document write of `json`, an object already serialised as compact JSON.
    pub fn index_json(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        json: String,
    ) -> Self {
        Document::write(index, id, version, Action::Index(Json::from_text(json)))
    }

    /// The soft-delete tombstone of `id` at `version`: a late older write gets a 409.
    pub fn soft_delete(index: impl Into<String>, id: impl Into<String>, version: i64) -> Self {
        let id = id.into();
        let source = Json::of(&tombstone(&id, version));
        Document::write(index, id, version, Action::Index(source))
    }

    /// A partial change merging `fields` into the stored document.
    pub fn merge(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        fields: Value,
    ) -> Self {
        let id = id.into();
        let params = json!({ "documentId": id, "fields": fields, "version": version });
        let action = Action::Update {
            script: MERGE_SCRIPT.clone(),
            params: Json::of(&params),
        };
        Document::write(index, id, version, action)
    }

    /// The whole document `source` at `version`, as a version-guarded scripted upsert that
    /// keeps the stored values of the fields named in `keep` (denormalised fields written
    /// by other entities' events). A tombstone is a `source` with `deleted: true`.
    pub fn replace(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        source: impl Serialize,
        keep: &[&str],
    ) -> Self {
        let id = id.into();
        let params = Json::of(&ReplaceParams {
            document_id: &id,
            keep,
            source,
            version,
        });
        let action = Action::Update {
            script: REPLACE_KEEPING_SCRIPT.clone(),
            params,
        };
        Document::write(index, id, version, action)
    }

    /// A write of `id` running `script` (one that guards itself, [`Action::Script`]) with
    /// `params`, a JSON object whose keys must include `documentId` (the document's id).
    pub fn script(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        script: &Script,
        params: Json,
    ) -> Self {
        let action = Action::Script {
            script: script.clone(),
            params,
        };
        Document::write(index, id, version, action)
    }

    /// Any write of `id` in `index` at `version`.
    fn write(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        action: Action,
    ) -> Self {
        Document {
            index: index.into(),
            id: id.into(),
            version,
            action,
        }
    }

    /// A change of some of the entity's fields (`fields`, a JSON object) at `version`,
    /// applied field by field: each field is set only over an older value of that field
    /// (each field's version is kept in `fieldVersions`, stored, not indexed), so the
    /// document ends at every field's latest value in any order of the events, whole or
    /// partial. A document deleted at this version or later is left as is. Nothing else of
    /// the stored document is touched (denormalised fields stay). Keyed collections (an
    /// organization's members) are set with [`Document::with_entries`].
    pub fn fields(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        fields: impl Serialize,
    ) -> Self {
        Document::fields_with(index, id, version, fields, false, &[])
    }

    fn fields_with(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        fields: impl Serialize,
        tombstone: bool,
        keep: &[&str],
    ) -> Self {
        let id = id.into();
        let params = Json::of(&FieldsParams {
            document_id: &id,
            entries: [],
            equal: false,
            fields,
            keep,
            tombstone,
            version,
        });
        Document::script(index, id, version, &FIELDS_SCRIPT, params)
    }

    /// The tombstone of [`Document::fields`] documents at `version`: every field cleared
    /// but those named in `keep` (denormalised ones), then `fields` set (say `updatedAt`),
    /// `deleted: true`; any later write of an older version is a no-op.
    pub fn fields_tombstone(
        index: impl Into<String>,
        id: impl Into<String>,
        version: i64,
        mut fields: Value,
        keep: &[&str],
    ) -> Self {
        if !fields.is_object() {
            fields = json!({});
        }
        fields[DELETED_FIELD] = true.into();
        Document::fields_with(index, id, version, fields, true, keep)
    }

    /// Adds to a [`Document::fields`] write the entries `values` (key → value object, or
    /// `null` for a removed entry) of the keyed collection `field`, whose values carry
    /// their key in `key`. Each entry is versioned on its own (in `entryVersions`; a
    /// removal is remembered at its version, so an older add does not bring it back); with
    /// `replace`, entries missing from `values` are removed too (a whole-state event). The
    /// stored `field` is the list of live values, the one whose key equals the document's
    /// field `first` first, then by key. Rare writes (memberships): the params are edited
    /// as a tree.
    pub fn with_entries(
        mut self,
        field: &str,
        key: &str,
        first: &str,
        values: Value,
        replace: bool,
    ) -> Self {
        if let Action::Script { script, params } = &mut self.action
            && *script == *FIELDS_SCRIPT
        {
            params.edit(|params| {
                if let Some(entries) = params["entries"].as_array_mut() {
                    entries.retain(|e| e["field"] != json!(field));
                    entries.push(json!({
                        "field": field, "key": key, "first": first, "values": values,
                        "replace": replace,
                    }));
                }
            });
        }
        self
    }

    /// The same write, applied over a stored document at the *same* version too (not only
    /// an older one): what a repair from the source of truth needs, e.g. to turn a wrong
    /// tombstone back into the live document at its version. External versions
    /// (`external_gte`) already accept an equal version.
    pub fn overwriting_equal(self) -> Document {
        let action = match self.action {
            Action::Update { script, params } => Action::Script {
                script: Script::new(version_guarded(script.source(), true)),
                params,
            },
            Action::Script { script, mut params } if script == *FIELDS_SCRIPT => {
                params.edit(|p| p["equal"] = true.into());
                Action::Script { script, params }
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

/// The field-by-field write of [`Document::fields`] (and its tombstone, and keyed entries).
/// `params`: `version`, `fields`, `entries` (`[{field, key, first, values, replace}]`),
/// `tombstone`, `keep`, `equal` (also over an equal version: repairs), `documentId`.
/// Documents written before field versions existed count each present field at the
/// document's `aggregateVersion`.
const FIELDS: &str = "\
    def s = ctx._source; long v = params.version; boolean eq = params.equal; \
    def stored = s.aggregateVersion; long had = stored == null ? -1L : ((Number) stored).longValue(); \
    boolean gone = s.deleted == true; \
    if (params.tombstone) { \
      if (had > v || (had == v && gone && !eq)) { ctx.op = 'none' } else { \
        def kept = [:]; for (def k : params.keep) { if (s.containsKey(k)) { kept[k] = s[k] } } \
        s.clear(); s.putAll(kept); s.putAll(params.fields); \
        s.id = params.documentId; s.aggregateVersion = v \
      } \
    } else if (gone && (eq ? had > v : had >= v)) { ctx.op = 'none' } else { \
      def fv = s.fieldVersions; long base = -1L; \
      if (fv == null) { fv = [:]; base = had } \
      boolean changed = false; \
      for (def e : params.fields.entrySet()) { \
        def k = e.getKey(); \
        long at = fv.containsKey(k) ? ((Number) fv[k]).longValue() : (s.containsKey(k) ? base : -1L); \
        if (eq ? at <= v : at < v) { s[k] = e.getValue(); fv[k] = v; changed = true } \
      } \
      def ev = s.entryVersions; if (ev == null) { ev = [:] } \
      for (def op : params.entries) { \
        String name = op.field; String key = op.key; \
        def mine = ev[name]; \
        if (mine == null) { \
          mine = [:]; \
          if (s[name] instanceof List) { for (def m : s[name]) { mine[m[key]] = ['v': base, 'value': m] } } \
        } \
        for (def e : op.values.entrySet()) { \
          def cur = mine[e.getKey()]; long at = cur == null ? -1L : ((Number) cur.v).longValue(); \
          if (eq ? at <= v : at < v) { mine[e.getKey()] = ['v': v, 'value': e.getValue()]; changed = true } \
        } \
        if (op.replace) { \
          for (def k : new ArrayList(mine.keySet())) { \
            long at = ((Number) mine[k].v).longValue(); \
            if (!op.values.containsKey(k) && (eq ? at <= v : at < v)) { mine[k] = ['v': v, 'value': null]; changed = true } \
          } \
        } \
        ev[name] = mine; \
        def live = []; for (def en : mine.values()) { if (en.value != null) { live.add(en.value) } } \
        def lead = s[op.first]; \
        Collections.sort(live, (a, b) -> { \
          boolean x = lead != null && lead.equals(a[key]); boolean y = lead != null && lead.equals(b[key]); \
          if (x != y) { return x ? -1 : 1 } return a[key].compareTo(b[key]) }); \
        s[name] = live \
      } \
      if (changed) { \
        s.fieldVersions = fv; s.entryVersions = ev; s.id = params.documentId; \
        if (had < v) { s.aggregateVersion = v } \
      } else { ctx.op = 'none' } \
    }";

/// Replaces `ctx._source` with `params.source`, keeping the fields listed in `params.keep`.
const REPLACE_KEEPING: &str = "def kept = [:]; \
     for (k in params.keep) { if (ctx._source.containsKey(k)) { kept[k] = ctx._source[k] } } \
     ctx._source.clear(); ctx._source.putAll(params.source); ctx._source.putAll(kept)";

/// The source of the soft-delete tombstone of `id` at `version`.
pub fn tombstone(id: &str, version: i64) -> Tombstone<'_> {
    Tombstone {
        aggregate_version: version,
        deleted: true,
        id,
        updated_at: None,
    }
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
        let source = source.value();
        assert_eq!(source["deleted"], json!(true));
        assert_eq!(source["aggregateVersion"], json!(7));
        let q = live(json!({"match_all": {}}));
        assert_eq!(q["bool"]["must_not"][0]["term"]["deleted"], json!(true));
    }

    #[test]
    fn field_by_field_writes_carry_their_version_entries_and_repair_flag_in_params() {
        let doc = Document::fields("o", "o1", 2, json!({"name": "n"})).with_entries(
            "members",
            "userId",
            "ownerId",
            json!({"u1": {"userId": "u1"}}),
            false,
        );
        let Action::Script { script, params } = &doc.action else {
            panic!("{doc:?}")
        };
        let params = params.value();
        assert_eq!(*script, FIELDS);
        assert_eq!(params["version"], json!(2));
        assert_eq!(params["equal"], json!(false));
        assert_eq!(params["entries"][0]["values"]["u1"]["userId"], json!("u1"));
        let Action::Script { params, .. } = doc.clone().overwriting_equal().action else {
            panic!()
        };
        assert_eq!(
            params.value()["equal"],
            json!(true),
            "a repair also replaces an equal version"
        );
        let tomb = Document::fields_tombstone("o", "o1", 3, json!({}), &["kept"]);
        let Action::Script { script, params } = &tomb.action else {
            panic!()
        };
        let params = params.value();
        assert_eq!(*script, FIELDS, "one script for every kind: compiled once");
        assert_eq!(params["tombstone"], json!(true));
        assert_eq!(params["fields"]["deleted"], json!(true));
        assert_eq!(params["keep"], json!(["kept"]));
    }
}
