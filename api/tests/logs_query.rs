//! The admin-only `logs` query on the real search engine: one request's records in time
//! order with their fields, filtered by level and service; anonymous callers and plain
//! users are refused; a bad `since` is named. The records are indexed here into indices
//! of a unique prefix, mapped as the log pipeline's template maps them (the pipeline
//! itself is tested in `pipelines/logs/tests/`).

mod common;

use anineplus_connectors::search;
use anineplus_testkit::{Stack, unique};
use common::TestApi;
use elasticsearch::http::Method;
use serde_json::json;

const LOGS: &str = "query($c: String, $s: String, $l: LogLevel, $since: String) {
  logs(correlationId: $c, service: $s, level: $l, since: $since, first: 50) {
    timestamp level service correlationId message context { key value }
  }
}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_read_one_requests_records_in_time_order_and_nobody_else_does() {
    let stack = Stack::from_env();
    let (client, _) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    let prefix = unique("apilogs");
    let mapping = json!({"mappings": {"properties": {
        "@timestamp": {"type": "date"}, "level": {"type": "keyword"},
        "service": {"type": "keyword"}, "correlationId": {"type": "keyword"},
        "message": {"type": "text"},
        "kafka": {"properties": {"partition": {"type": "integer"}, "offset": {"type": "long"}}},
    }}});
    for index in ["api-2026.12.03", "indexer-2026.12.03"] {
        search::call_json(
            &client,
            Method::Put,
            &format!("/{prefix}-{index}"),
            Some(&mapping),
        )
        .await
        .unwrap();
    }
    let doc = |ts: &str, level: &str, service: &str, cid: &str, message: &str, offset: i64| {
        json!({"@timestamp": ts, "level": level, "service": service, "correlationId": cid,
               "message": message, "context": {"target": format!("{service}::x")},
               "kafka": {"topic": "logs", "partition": 0, "offset": offset}})
    };
    let mut body = Vec::new();
    for (index, d) in [
        (
            "api",
            doc(
                "2026-12-03T10:00:00.002Z",
                "ERROR",
                "api",
                "Req-1",
                "resolver failed",
                2,
            ),
        ),
        (
            "indexer",
            doc(
                "2026-12-03T10:00:00.003Z",
                "INFO",
                "indexer",
                "Req-1",
                "record written",
                3,
            ),
        ),
        (
            "api",
            doc(
                "2026-12-03T10:00:00.001Z",
                "INFO",
                "api",
                "Req-1",
                "graphql operation",
                1,
            ),
        ),
        (
            "api",
            doc(
                "2026-12-03T10:00:00.004Z",
                "INFO",
                "api",
                "Req-2",
                "another request",
                4,
            ),
        ),
    ] {
        body.extend(
            serde_json::to_vec(
                &json!({"index": {"_index": format!("{prefix}-{index}-2026.12.03")}}),
            )
            .unwrap(),
        );
        body.push(b'\n');
        body.extend(serde_json::to_vec(&d).unwrap());
        body.push(b'\n');
    }
    search::call(
        &client,
        Method::Post,
        "/_bulk?refresh=true",
        "application/x-ndjson",
        Some(body.into()),
    )
    .await
    .unwrap();

    let api = TestApi::start_with(&["--log-index-prefix", &prefix]).await;
    let admin = api.admin().await;
    let (user, _) = api.user().await;

    let reply = api.gql(LOGS, json!({"c": "Req-1"}), Some(&admin)).await;
    let logs = reply.data()["logs"].as_array().unwrap().clone();
    let messages: Vec<&str> = logs
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["graphql operation", "resolver failed", "record written"]
    );
    assert_eq!(logs[2]["service"], "indexer");
    assert_eq!(logs[0]["timestamp"], "2026-12-03T10:00:00.001Z");
    assert_eq!(
        logs[0]["context"],
        json!([{"key": "target", "value": "api::x"}])
    );

    let errors = api
        .gql(LOGS, json!({"c": "Req-1", "l": "ERROR"}), Some(&admin))
        .await;
    assert_eq!(errors.data()["logs"].as_array().unwrap().len(), 1);
    let indexer = api
        .gql(LOGS, json!({"c": "Req-1", "s": "indexer"}), Some(&admin))
        .await;
    assert_eq!(indexer.data()["logs"][0]["message"], "record written");
    let later = api
        .gql(
            LOGS,
            json!({"s": "api", "since": "2026-12-03T10:00:00.002Z"}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        later.data()["logs"].as_array().unwrap().len(),
        2,
        "{later:?}"
    );

    api.gql(LOGS, json!({"c": "Req-1"}), None)
        .await
        .assert_code("UNAUTHENTICATED");
    api.gql(LOGS, json!({"c": "Req-1"}), Some(&user))
        .await
        .assert_code("FORBIDDEN");
    api.gql(LOGS, json!({"since": "yesterday"}), Some(&admin))
        .await
        .assert_error("BAD_USER_INPUT", "since");

    api.stop().await;
    let _ = search::call_json(&client, Method::Delete, &format!("/{prefix}-*"), None).await;
}
