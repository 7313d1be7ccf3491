//! The search sink against the real engine (OpenSearch here, Elasticsearch 8 in
//! docker-compose): versioned writes, 409 as already applied, mapping errors as permanent
//! with the engine's reason, soft deletes that late writes cannot undo, guarded partial
//! updates, and the alias layout from the index template.

use std::time::Duration;

use anineplus_connectors::Outcome;
use anineplus_connectors::search_sink::{
    Action, BulkLimits, BulkService, Document, IndexSpec, SearchSink, live,
};
use anineplus_testkit::{Stack, unique};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

async fn setup() -> (Elasticsearch, SearchSink, String) {
    let stack = Stack::from_env();
    let (client, _) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    let alias = unique("sink");
    let spec = IndexSpec {
        alias: alias.clone(),
        mappings: json!({ "dynamic": false, "properties": {
            "title": { "type": "text" },
            "year": { "type": "short" },
            "deleted": { "type": "boolean" },
            "aggregateVersion": { "type": "long" },
        }}),
        analysis: None,
    };
    spec.ensure(&client).await.unwrap();
    spec.ensure(&client).await.expect("idempotent");
    let sink = SearchSink::new(
        BulkService::new(
            anineplus_connectors::search::client(&stack.search_url, Duration::from_secs(10))
                .unwrap(),
        ),
        BulkLimits {
            max_docs: 2,
            max_bytes: 1 << 20,
        },
    );
    (client, sink, alias)
}

async fn get(client: &Elasticsearch, alias: &str, id: &str) -> (i64, Value) {
    let body: Value = client
        .get(elasticsearch::GetParts::IndexId(alias, id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["_version"].as_i64().unwrap_or(-1),
        body["_source"].clone(),
    )
}

#[tokio::test]
async fn versions_conflicts_mapping_errors_and_soft_deletes_read_item_by_item() {
    let (client, sink, alias) = setup().await;
    let doc = |id: &str, v: i64, title: &str| {
        Document::index(
            &alias,
            id,
            v,
            json!({"title": title, "aggregateVersion": v}),
        )
    };
    let outcomes = sink
        .write(&[
            doc("a", 3, "Frieren"),
            doc("a", 2, "stale"),
            doc("a", 3, "Frieren"),
            Document::index(&alias, "bad", 1, json!({"title": "x", "year": 70000})),
            doc("gone", 1, "Bebop"),
        ])
        .await;
    assert_eq!(outcomes[0], Outcome::Done);
    assert_eq!(outcomes[1], Outcome::AlreadyApplied, "older version: 409");
    assert_eq!(
        outcomes[2],
        Outcome::Done,
        "same version again: rewritten identically"
    );
    match &outcomes[3] {
        Outcome::Permanent(reason) => {
            assert!(reason.contains("mapper_parsing_exception"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcomes[4], Outcome::Done);

    // A delete, then a late older update: it stays deleted.
    let outcomes = sink
        .write(&[
            Document::soft_delete(&alias, "gone", 3),
            doc("gone", 2, "Bebop (late)"),
        ])
        .await;
    assert_eq!(outcomes, vec![Outcome::Done, Outcome::AlreadyApplied]);
    let (version, source) = get(&client, &alias, "gone").await;
    assert_eq!((version, source["deleted"].clone()), (3, json!(true)));

    // Guarded partial updates: applied once, older or repeated ones are no-ops.
    let merge = |v: i64, title: &str| Document::merge(&alias, "a", v, json!({"subtitle": title}));
    let outcomes = sink
        .write(&[merge(4, "new"), merge(4, "new"), merge(2, "old")])
        .await;
    assert!(outcomes.iter().all(Outcome::is_success), "{outcomes:?}");
    let (version, source) = get(&client, &alias, "a").await;
    assert_eq!(version, 4, "an update after v3 bumps _version to 4");
    assert_eq!(source["subtitle"], json!("new"));
    assert_eq!(source["title"], json!("Frieren"), "merge keeps the rest");
    assert_eq!(source["aggregateVersion"], json!(4));
    // ... and external versions keep working after it.
    assert_eq!(
        sink.write(&[doc("a", 3, "older")]).await,
        vec![Outcome::AlreadyApplied]
    );
    assert_eq!(
        sink.write(&[doc("a", 5, "newer")]).await,
        vec![Outcome::Done]
    );

    // Searches through the alias skip tombstones.
    client
        .indices()
        .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[
            &alias,
        ]))
        .send()
        .await
        .unwrap();
    let body: Value = client
        .search(elasticsearch::SearchParts::Index(&[&alias]))
        .body(json!({"query": live(json!({"match_all": {}}))}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = body["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["a".to_owned()], "{body}");
    assert!(matches!(
        Document::soft_delete(&alias, "x", 1).action,
        Action::Index(_)
    ));

    client
        .indices()
        .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[
            &format!("{alias}-v1"),
        ]))
        .send()
        .await
        .unwrap();
    client
        .indices()
        .delete_index_template(
            elasticsearch::indices::IndicesDeleteIndexTemplateParts::Name(&alias),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_engine_makes_every_document_retryable() {
    let sink = SearchSink::new(
        BulkService::new(
            anineplus_connectors::search::client("http://127.0.0.1:1", Duration::from_secs(2))
                .unwrap(),
        ),
        BulkLimits::default(),
    );
    let outcomes = sink
        .write(&[
            Document::index("x", "1", 1, json!({})),
            Document::soft_delete("x", "2", 1),
        ])
        .await;
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(Outcome::is_unavailable), "{outcomes:?}");
}

/// Scripted updates contending for one document: the engine answers some with a 409
/// (`version_conflict_engine_exception` on a sequence number) when another write got there
/// between its read and its write. That is a concurrency conflict, not a version refusal:
/// each such item must come back retryable, never "already applied". Provoked on the real
/// engine with `retry_on_conflict: 0` (the sink asks for 3, which makes the same answer
/// rarer, not different); the responses are read by the sink's own reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_409_on_a_scripted_update_is_a_conflict_to_retry_not_already_applied() {
    let (client, sink, alias) = setup().await;
    let mut body = Vec::new();
    for _ in 0..50 {
        let action = json!({"update": {"_index": alias, "_id": "hot", "retry_on_conflict": 0}});
        let update = json!({"scripted_upsert": true, "upsert": {}, "script": {"lang": "painless",
            "source": "ctx._source.n = (ctx._source.n == null ? 0 : ctx._source.n) + 1"}});
        for line in [action, update] {
            body.extend(serde_json::to_vec(&line).unwrap());
            body.push(b'\n');
        }
    }
    let (mut sent, mut conflicts, mut applied, mut wrong) = (0, 0, 0, Vec::new());
    for _round in 0..10 {
        let writers = (0..30).map(|_| {
            let (client, body) = (client.clone(), body.clone());
            tokio::spawn(async move {
                let mut headers = HeaderMap::new();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
                let response = client
                    .send(
                        Method::Post,
                        "/_bulk",
                        headers,
                        None::<&()>,
                        Some(body),
                        None,
                    )
                    .await
                    .unwrap();
                response.bytes().await.unwrap()
            })
        });
        for answer in futures::future::join_all(writers).await {
            let answer = answer.unwrap();
            let statuses: Vec<u64> = serde_json::from_slice::<Value>(&answer).unwrap()["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["update"]["status"].as_u64().unwrap())
                .collect();
            let outcomes = anineplus_connectors::search_sink::request::read_response(&answer, 50);
            for (status, outcome) in statuses.iter().zip(outcomes) {
                sent += 1;
                match (status, outcome) {
                    (200 | 201, Outcome::Done) => applied += 1,
                    (409, Outcome::Retry(reason)) => {
                        assert!(reason.contains("version_conflict"), "{reason}");
                        conflicts += 1;
                    }
                    other => wrong.push(format!("{other:?}")),
                }
            }
        }
        if conflicts > 0 || !wrong.is_empty() {
            break;
        }
    }
    let (_, source) = get(&client, &alias, "hot").await;
    eprintln!(
        "{sent} scripted updates: {applied} applied, {conflicts} 409s read as retryable, \
         {} misread (n = {}); first misread: {:?}",
        wrong.len(),
        source["n"],
        wrong.first()
    );
    assert!(
        wrong.is_empty(),
        "409s on updates not retried: {}",
        wrong.len()
    );
    assert!(conflicts > 0, "no conflict provoked in 10 rounds");
    assert_eq!(source["n"], json!(applied), "the 409s were not applied");
    drop(sink);

    client
        .indices()
        .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[
            &format!("{alias}-v1"),
        ]))
        .send()
        .await
        .unwrap();
    client
        .indices()
        .delete_index_template(
            elasticsearch::indices::IndicesDeleteIndexTemplateParts::Name(&alias),
        )
        .send()
        .await
        .unwrap();
}

/// A mapping change the live index cannot take (a sub-field with an analyser it lacks):
/// refused as a permanent error at the same mapping version, left for a reindex (the old
/// generation keeps serving) when the new mappings are of a later version; a generation
/// made from the template then has the new analyser and sub-field.
#[tokio::test]
async fn a_mapping_change_the_live_index_refuses_waits_for_a_reindex_when_its_version_is_newer() {
    let stack = Stack::from_env();
    let (client, _) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    let alias = unique("mapver");
    let title = |sub: bool| {
        let mut t = json!({ "type": "text" });
        if sub {
            t["fields"] = json!({ "folded": { "type": "text", "analyzer": "folded" } });
        }
        t
    };
    let v1 = IndexSpec {
        alias: alias.clone(),
        mappings: json!({ "_meta": { "version": 1 }, "dynamic": false,
            "properties": { "title": title(false) } }),
        analysis: None,
    };
    v1.ensure(&client).await.expect("the first generation");
    let analysis = json!({ "analyzer": { "folded": {
        "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"] } } });
    let same_version = IndexSpec {
        alias: alias.clone(),
        mappings: json!({ "_meta": { "version": 1 }, "dynamic": false,
            "properties": { "title": title(true) } }),
        analysis: Some(analysis.clone()),
    };
    let refused = same_version
        .ensure(&client)
        .await
        .expect_err("an analyser the index lacks");
    assert!(!refused.is_retryable(), "{refused}");
    assert!(refused.to_string().contains("folded"), "{refused}");
    let v2 = IndexSpec {
        mappings: json!({ "_meta": { "version": 2 }, "dynamic": false,
            "properties": { "title": title(true) } }),
        ..same_version
    };
    v2.ensure(&client)
        .await
        .expect("a newer version waits for the reindex");
    let live = anineplus_connectors::search::call_json(
        &client,
        Method::Get,
        &format!("/{alias}/_mapping"),
        None,
    )
    .await
    .expect("the mapping");
    let first = format!("{alias}-v1");
    assert_eq!(live[&first]["mappings"]["_meta"]["version"], json!(1));
    // The next generation, as a reindex makes it, gets the template's analysis.
    let next = format!("{alias}-v2");
    anineplus_connectors::search::call_json(&client, Method::Put, &format!("/{next}"), None)
        .await
        .expect("the next generation");
    let made = anineplus_connectors::search::call_json(
        &client,
        Method::Get,
        &format!("/{next}/_mapping"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        made[&next]["mappings"]["properties"]["title"]["fields"]["folded"]["analyzer"],
        json!("folded")
    );
    for index in [first, next] {
        let _ = anineplus_connectors::search::call_json(
            &client,
            Method::Delete,
            &format!("/{index}"),
            None,
        )
        .await;
    }
    let _ = anineplus_connectors::search::call_json(
        &client,
        Method::Delete,
        &format!("/_index_template/{alias}"),
        None,
    )
    .await;
}
