//! Pure bulk request building and response reading (no I/O).

use std::borrow::Borrow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{Action, Document, retry};
use crate::Outcome;

/// Bounds of one bulk request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Most documents per request.
    pub max_docs: usize,
    /// Most body bytes per request (a single larger document still goes alone).
    pub max_bytes: usize,
}

impl Default for BulkLimits {
    fn default() -> Self {
        BulkLimits {
            max_docs: 1000,
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

/// One NDJSON bulk body and the documents (by position in the input) it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// The `application/x-ndjson` body (sent without a copy).
    pub body: Bytes,
    /// Which input documents it holds, in order.
    pub docs: Range<usize>,
}

/// Appends the action and source lines of `doc` to `out`.
///
/// Copies what the document holds already serialised ([`super::Json`], the script's JSON
/// string): no JSON tree is built or walked per document. The bytes are those of
/// serialising the equivalent `serde_json::Value` objects (keys in sorted order, compact),
/// so the body does not depend on how it was made (a unit test holds both to it).
pub fn encode(doc: &Document, out: &mut Vec<u8>) {
    match &doc.action {
        Action::Index(json) => {
            write_index_line(out, doc);
            out.extend_from_slice(json.as_str().as_bytes());
            out.push(b'\n');
        }
        Action::Update { script, params } => {
            write_upsert(out, doc, script.guarded_json(), params.as_str())
        }
        Action::Script { script, params } => write_upsert(out, doc, script.json(), params.as_str()),
    }
}

/// The action line of a whole-document write at an external version.
fn write_index_line(out: &mut Vec<u8>, doc: &Document) {
    out.extend_from_slice(b"{\"index\":{\"_id\":");
    write_str(out, &doc.id);
    out.extend_from_slice(b",\"_index\":");
    write_str(out, &doc.index);
    out.extend_from_slice(b",\"version\":");
    serde_json::to_writer(&mut *out, &doc.version).expect("JSON to a Vec never fails");
    out.extend_from_slice(b",\"version_type\":\"external_gte\"}}\n");
}

/// Appends a scripted upsert (the script also runs on a missing document, as `{}`):
/// `source` (a JSON string) with `params` (a JSON object).
fn write_upsert(out: &mut Vec<u8>, doc: &Document, source: &str, params: &str) {
    out.extend_from_slice(b"{\"update\":{\"_id\":");
    write_str(out, &doc.id);
    out.extend_from_slice(b",\"_index\":");
    write_str(out, &doc.index);
    out.extend_from_slice(b",\"retry_on_conflict\":3}}\n");
    out.extend_from_slice(b"{\"script\":{\"lang\":\"painless\",\"params\":");
    out.extend_from_slice(params.as_bytes());
    out.extend_from_slice(b",\"source\":");
    out.extend_from_slice(source.as_bytes());
    out.extend_from_slice(b"},\"scripted_upsert\":true,\"upsert\":{}}\n");
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("JSON to a Vec never fails");
}

/// Splits `docs` into bulk bodies bounded by `limits`, keeping their order.
///
/// Each document is encoded straight into its request's body (no line buffer copied per
/// document); the one that would overflow a full body moves to the next. A body is sized
/// from its first document once that is encoded, so it rarely grows by reallocation (each
/// growth copies the body and touches fresh pages).
pub fn build<D: Borrow<Document>>(docs: &[D], limits: BulkLimits) -> Vec<BulkRequest> {
    let mut requests = Vec::new();
    let mut body = Vec::new();
    let mut start = 0;
    // Room for the documents of a body after its first: `per_doc` bytes each (the first
    // document's size and a margin), bounded by the body's limits.
    let reserve = |body: &mut Vec<u8>, per_doc: usize, i: usize| {
        let rest = (docs.len() - i - 1).min(limits.max_docs.saturating_sub(1));
        body.reserve((per_doc * rest).min(limits.max_bytes));
    };
    let mut per_doc = 0;
    for (i, doc) in docs.iter().enumerate() {
        if i - start >= limits.max_docs {
            let full = std::mem::take(&mut body);
            requests.push(finished(full, start..i));
            start = i;
        }
        let mark = body.len();
        encode(doc.borrow(), &mut body);
        if mark == 0 {
            if per_doc == 0 {
                per_doc = (body.len() + body.len() / 8).max(64);
            }
            reserve(&mut body, per_doc, i);
        }
        if i > start && body.len() > limits.max_bytes {
            let line = body[mark..].to_vec();
            body.truncate(mark);
            let full = std::mem::replace(&mut body, line);
            reserve(&mut body, per_doc, i);
            requests.push(finished(full, start..i));
            start = i;
        }
    }
    if start < docs.len() {
        requests.push(finished(body, start..docs.len()));
    }
    requests
}

fn finished(body: Vec<u8>, docs: Range<usize>) -> BulkRequest {
    BulkRequest {
        body: Bytes::from(body),
        docs,
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<BulkItem>,
}

/// One item of a bulk response, keyed by its operation: read without a map or a `String`
/// per item (the rest of the item's fields are skipped unread).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum BulkItem {
    Index(Item),
    Create(Item),
    Update(Item),
    Delete(Item),
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads a bulk response into one outcome per document, in request order. A response that
/// does not parse or has the wrong number of items makes every document retryable.
pub fn read_response(body: &[u8], expected: usize) -> Vec<Outcome> {
    let parsed: BulkResponse = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            return vec![Outcome::Retry(format!("unreadable bulk response: {e}")); expected];
        }
    };
    if parsed.items.len() != expected {
        let reason = format!(
            "bulk response has {} items for {expected} documents",
            parsed.items.len()
        );
        return vec![Outcome::Retry(reason); expected];
    }
    parsed
        .items
        .into_iter()
        .map(|item| {
            let (op, item) = match &item {
                BulkItem::Index(i) => ("index", i),
                BulkItem::Create(i) => ("create", i),
                BulkItem::Update(i) => ("update", i),
                BulkItem::Delete(i) => ("delete", i),
            };
            retry::item_outcome(op, item.status, item.error.as_ref())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search_sink::{Json, Script};
    use serde_json::json;

    /// The encoding as `serde_json` objects, the reference [`encode`] must equal byte for
    /// byte.
    fn encode_as_values(doc: &Document) -> Vec<u8> {
        let mut out = Vec::new();
        let mut line = |value: &Value| {
            serde_json::to_writer(&mut out, value).unwrap();
            out.push(b'\n');
        };
        let upsert = |source: String, params: Value| {
            json!({
                "scripted_upsert": true,
                "upsert": {},
                "script": { "lang": "painless", "source": source, "params": params },
            })
        };
        let update = json!({ "update": {
            "_index": doc.index, "_id": doc.id, "retry_on_conflict": 3,
        }});
        match &doc.action {
            Action::Index(source) => {
                line(&json!({ "index": {
                    "_index": doc.index, "_id": doc.id, "version": doc.version,
                    "version_type": "external_gte",
                }}));
                // Sent as is (text made elsewhere keeps its own key order).
                out.extend_from_slice(source.as_str().as_bytes());
                out.push(b'\n');
            }
            Action::Update { script, params } => {
                line(&update);
                line(&upsert(
                    crate::search_sink::version_guarded(script.source(), false),
                    params.value(),
                ));
            }
            Action::Script { script, params } => {
                line(&update);
                line(&upsert(script.source().to_owned(), params.value()));
            }
        }
        out
    }

    #[test]
    fn the_body_is_byte_for_byte_the_serde_json_encoding() {
        let docs = [
            Document::index(
                "anime",
                "a\"1",
                3,
                json!({"title": "Frieren \u{1F600}", "n": 1.5}),
            ),
            Document::soft_delete("anime", "a2", 9),
            Document::index_json(
                "logs-api-2026.12.03",
                "logs:0:1",
                1,
                r#"{"z":1,"a":"é"}"#.into(),
            ),
            Document::merge("comments", "c1", 4, json!({"status": "HIDDEN"})),
            Document::replace("users", "u1", 2, json!({"name": "A"}), &["animeTitle"]),
            Document::fields("organizations", "o1", 7, json!({"name": "O", "zeta": null}))
                .with_entries(
                    "members",
                    "userId",
                    "owner",
                    json!({"u": {"userId": "u"}}),
                    true,
                ),
            Document::fields_tombstone("users", "u2", 8, json!({"updatedAt": 1}), &["x"]),
            Document::fields("users", "u3", 1, json!({})).overwriting_equal(),
            Document {
                index: "x".into(),
                id: "y".into(),
                version: 5,
                action: Action::Script {
                    script: Script::new("ctx.op = 'none'"),
                    params: Json::of(
                        &json!({"version": 99, "documentId": "y", "a": [1, {"b": 2}]}),
                    ),
                },
            },
            Document {
                index: "x".into(),
                id: "z".into(),
                version: 6,
                action: Action::Update {
                    script: Script::new("ctx._source.a = 1"),
                    params: Json::of(&json!({"version": 6, "aa": 1, "documentId": "z", "w": 3})),
                },
            },
        ];
        for doc in &docs {
            let mut ours = Vec::new();
            encode(doc, &mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(encode_as_values(doc)).unwrap(),
                "{doc:?}"
            );
        }
    }

    fn doc(id: &str, version: i64, size: usize) -> Document {
        Document::index("anime", id, version, json!({ "title": "x".repeat(size) }))
    }

    #[test]
    fn partial_changes_are_version_guarded_scripted_upserts() {
        let mut out = Vec::new();
        encode(
            &Document::merge("c", "c1", 4, json!({"status": "HIDDEN"})),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["update"]["_id"], json!("c1"));
        assert_eq!(lines[1]["scripted_upsert"], json!(true));
        assert_eq!(lines[1]["script"]["params"]["version"], json!(4));
        assert_eq!(
            lines[1]["script"]["params"]["fields"]["status"],
            json!("HIDDEN")
        );
        let source = lines[1]["script"]["source"].as_str().unwrap();
        assert!(source.contains("ctx.op = 'none'"), "{source}");
    }

    fn lines(doc: &Document) -> Vec<Value> {
        let mut out = Vec::new();
        encode(doc, &mut out);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn scripts_take_everything_from_params_so_each_kind_compiles_once() {
        let a = lines(&Document::replace(
            "a",
            "a1",
            2,
            json!({"title": "x"}),
            &["n"],
        ));
        let b = lines(&Document::replace(
            "a",
            "a'2",
            5,
            json!({"title": "y"}),
            &["n"],
        ));
        assert_eq!(a[1]["script"]["source"], b[1]["script"]["source"]);
        assert_eq!(b[1]["script"]["params"]["documentId"], json!("a'2"));
        assert_eq!(b[1]["script"]["params"]["keep"], json!(["n"]));
        assert_eq!(b[1]["script"]["params"]["source"]["title"], json!("y"));
        let own = Document::script(
            "a",
            "a1",
            3,
            &Script::new("ctx._source.n = params.n"),
            Json::of(&json!({"documentId": "a1", "n": 1})),
        );
        let own = lines(&own);
        assert_eq!(own[0]["update"]["_id"], json!("a1"));
        assert_eq!(own[1]["scripted_upsert"], json!(true));
        assert_eq!(
            own[1]["script"]["source"],
            json!("ctx._source.n = params.n")
        );
        assert!(
            own[1]["script"]["params"]["version"].is_null(),
            "no outer guard"
        );
    }

    #[test]
    fn a_repair_write_also_replaces_an_equal_version() {
        let doc = Document::replace("a", "a1", 4, json!({"deleted": false}), &[]);
        let normal = lines(&doc);
        let repair = lines(&doc.clone().overwriting_equal());
        let guard = |l: &[Value]| l[1]["script"]["source"].as_str().unwrap().to_owned();
        assert!(
            guard(&normal).contains(">= params.version"),
            "{}",
            guard(&normal)
        );
        assert!(
            guard(&repair).contains("> params.version"),
            "{}",
            guard(&repair)
        );
        assert!(!guard(&repair).contains(">= params.version"));
        assert_eq!(repair[1]["script"]["params"]["version"], json!(4));
        assert_eq!(repair[1]["script"]["params"]["documentId"], json!("a1"));
        let external = Document::index("a", "a1", 4, json!({}));
        assert_eq!(external.clone().overwriting_equal(), external);
    }

    #[test]
    fn encodes_external_gte_versions_as_ndjson() {
        let mut out = Vec::new();
        encode(&doc("a1", 3, 1), &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let action: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            action,
            json!({"index": {"_index": "anime", "_id": "a1", "version": 3, "version_type": "external_gte"}})
        );
        assert_eq!(lines[1], r#"{"title":"x"}"#);
    }

    #[test]
    fn splits_by_count_and_bytes_in_order() {
        let docs: Vec<_> = (0..5).map(|i| doc(&format!("d{i}"), 1, 10)).collect();
        let by_count = build(
            &docs,
            BulkLimits {
                max_docs: 2,
                max_bytes: usize::MAX,
            },
        );
        let ranges: Vec<_> = by_count.iter().map(|r| r.docs.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..4, 4..5]);

        let one = {
            let mut out = Vec::new();
            encode(&docs[0], &mut out);
            out.len()
        };
        let by_bytes = build(
            &docs,
            BulkLimits {
                max_docs: 100,
                max_bytes: one * 3,
            },
        );
        let ranges: Vec<_> = by_bytes.iter().map(|r| r.docs.clone()).collect();
        assert_eq!(ranges, vec![0..3, 3..5]);
        assert!(by_bytes.iter().all(|r| r.body.len() <= one * 3));

        let huge = vec![doc("big", 1, 1000)];
        let alone = build(
            &huge,
            BulkLimits {
                max_docs: 10,
                max_bytes: 10,
            },
        );
        assert_eq!(alone.len(), 1, "an oversized document still goes, alone");
        assert!(build::<Document>(&[], BulkLimits::default()).is_empty());
    }

    /// A bulk response captured from OpenSearch 2.19 with mixed item results: created,
    /// version conflict, mapping error, rejected (429) and a shard failure (503).
    const CAPTURED: &str = r#"{"took":12,"errors":true,"items":[
      {"index":{"_index":"anineplus-anime-v1","_id":"a1","_version":3,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
      {"index":{"_index":"anineplus-anime-v1","_id":"a2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a2]: version conflict, current version [5] is higher than the one provided [3]","index":"anineplus-anime-v1","shard":"0","index_uuid":"x"}}},
      {"index":{"_index":"anineplus-anime-v1","_id":"a3","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [releaseYear] of type [short] in document with id 'a3'. Preview of field's value: '70000'","caused_by":{"type":"illegal_argument_exception","reason":"Value [70000] is out of range for a short"}}}},
      {"index":{"_index":"anineplus-anime-v1","_id":"a4","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
      {"index":{"_index":"anineplus-anime-v1","_id":"a5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
      {"index":{"_index":"anineplus-anime-v1","_id":"a1","_version":3,"result":"updated","status":200}}
    ]}"#;

    #[test]
    fn reads_a_captured_response_item_by_item() {
        let outcomes = read_response(CAPTURED.as_bytes(), 6);
        assert_eq!(outcomes[0], Outcome::Done);
        assert_eq!(outcomes[1], Outcome::AlreadyApplied);
        match &outcomes[2] {
            Outcome::Permanent(reason) => {
                assert!(reason.contains("mapper_parsing_exception"), "{reason}");
                assert!(reason.contains("out of range for a short"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(outcomes[3].is_retryable());
        assert!(outcomes[4].is_retryable());
        assert_eq!(outcomes[5], Outcome::Done);
    }

    /// Captured from OpenSearch 2.19: scripted upserts of one document from 60 concurrent
    /// bulks; two updates lost the race (`retry_on_conflict` spent), one applied.
    const CAPTURED_CONFLICT: &str = r#"{"took":31,"errors":true,"items":[
      {"update":{"_index":"h4probe-22120","_id":"x","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[x]: version conflict, required seqNo [435], primary term [1]. current document has seqNo [436] and primary term [1]","index":"h4probe-22120","shard":"0","index_uuid":"ODvDEukcQ7Sykd-t-lA8GA"}}},
      {"update":{"_index":"h4probe-22120","_id":"x","_version":438,"result":"updated","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":437,"_primary_term":1,"status":200}},
      {"update":{"_index":"h4probe-22120","_id":"x","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[x]: version conflict, required seqNo [442], primary term [1]. current document has seqNo [450] and primary term [1]","index":"h4probe-22120","shard":"0","index_uuid":"ODvDEukcQ7Sykd-t-lA8GA"}}}
    ]}"#;

    #[test]
    fn a_409_on_a_scripted_update_is_a_conflict_to_retry() {
        let outcomes = read_response(CAPTURED_CONFLICT.as_bytes(), 3);
        for i in [0, 2] {
            match &outcomes[i] {
                Outcome::Retry(reason) => {
                    assert!(reason.starts_with("concurrency conflict"), "{reason}");
                    assert!(reason.contains("version_conflict_engine_exception"));
                }
                other => panic!("item {i}: {other:?}"),
            }
        }
        assert_eq!(outcomes[1], Outcome::Done);
        // The same status on an external-version `index` stays "already applied".
        assert_eq!(
            read_response(CAPTURED.as_bytes(), 6)[1],
            Outcome::AlreadyApplied
        );
    }

    #[test]
    fn a_short_or_garbled_response_retries_everything() {
        assert!(
            read_response(CAPTURED.as_bytes(), 7)
                .iter()
                .all(Outcome::is_retryable)
        );
        let garbled = read_response(b"<html>bad gateway</html>", 2);
        assert_eq!(garbled.len(), 2);
        assert!(garbled.iter().all(Outcome::is_retryable));
    }
}
