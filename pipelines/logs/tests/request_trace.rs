//! The services `make up` runs, end to end: one GraphQL request made with a correlation id
//! is found in log storage by that id, with records of the API that served it and of the
//! indexer that wrote its event (its `record written` line), through the tracing layer,
//! the `logs` topic and the log index pipeline; and no record of it holds the password or
//! the email the request carried. Needs the stack's services (`make up`; `make test`
//! starts them): the API at `API_URL` (default `http://127.0.0.1:3000`).

use std::time::Duration;

use anineplus_connectors::log_search::{self, LogQuery};
use anineplus_schemas::indices::DEFAULT_LOG_PREFIX;
use anineplus_testkit::{Stack, unique};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_records_from_the_api_and_the_indexer_are_found_by_its_correlation_id() {
    let stack = Stack::from_env();
    let (search, _) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    let api = std::env::var("API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".to_owned());
    let prefix =
        std::env::var("LOG_INDEX_PREFIX").unwrap_or_else(|_| DEFAULT_LOG_PREFIX.to_owned());
    let correlation = unique("trace");
    let email = format!("{}@example.com", unique("fern"));
    let password = "correct horse battery staple 7";

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let query = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }";
    let answer: Value = http
        .post(format!("{api}/graphql"))
        .header("x-correlation-id", &correlation)
        .json(&json!({"query": query, "variables": {"i": {"email": email, "name": "Fern", "password": password}}}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the API of `make up` at {api} does not answer ({e}): start it with `make up`"))
        .json()
        .await
        .unwrap();
    assert!(answer["errors"].is_null(), "{answer}");

    let wanted = LogQuery {
        correlation_id: Some(correlation.clone()),
        size: 1000,
        ..LogQuery::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let hits = loop {
        let hits = log_search::find(&search, &prefix, &wanted).await.unwrap();
        let from = |service: &str| hits.iter().any(|h| h.service == service);
        if from("api") && from("indexer") {
            break hits;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "records of {correlation} in {prefix}-* after 90 s: {:?} (are the indexer and the log pipeline of `make up` running?)",
            hits.iter()
                .map(|h| (&h.service, &h.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let written = hits
        .iter()
        .find(|h| h.service == "indexer" && h.message == "record written")
        .expect("the indexer's line for the request's event");
    assert!(written.context["topic"].ends_with("user"), "{written:?}");
    assert!(
        hits.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "in time order"
    );
    for hit in &hits {
        let text = format!("{hit:?}");
        assert!(
            !text.contains(password) && !text.contains(&email),
            "a secret left: {text}"
        );
    }
    println!(
        "{} records of one request: {:?}",
        hits.len(),
        hits.iter()
            .map(|h| format!("{} {}", h.service, h.message))
            .collect::<Vec<_>>()
    );
}
