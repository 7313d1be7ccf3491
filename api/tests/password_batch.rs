//! One HTTP request of 5 documents × 15 aliased logins, counted in password checks that
//! actually ran (this file holds one test, so the process-wide count is its own).

mod common;

use common::TestApi;
use serde_json::{Value, json};

/// A batch of `docs` documents, each with `aliases` aliased logins of `email`.
fn login_batch(docs: usize, aliases: usize, email: &str, password: &str) -> Value {
    let fields: String = (0..aliases)
        .map(|i| {
            format!(
                "l{i}: login(input: {{email: \"{email}\", password: \"{password}\"}}) {{ token }} "
            )
        })
        .collect();
    let query = format!("mutation {{ {fields}}}");
    Value::Array((0..docs).map(|_| json!({"query": query})).collect())
}

/// The error codes of a batch answer, counted by code.
fn codes(body: &Value) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for doc in body.as_array().expect("a batch answer") {
        for error in doc["errors"].as_array().into_iter().flatten() {
            let code = error["extensions"]["code"].as_str().unwrap_or("none");
            *out.entry(code.to_owned()).or_default() += 1;
        }
    }
    out
}

/// Scenario: one HTTP request (one rate-limit unit) carrying 5 documents × 15 aliased
/// logins with the caller's own, right password (before: 75 argon2 verifications, ~37 s of
/// CPU). Each check counts against the client's allowance (10 per window): 10 logins run,
/// the sign-up spent one, so 9 logins run; the next one is `RATE_LIMITED` and, mutations
/// running in order, ends its document (whose `data` is then null); the other 4 documents
/// are refused at their first login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_aliased_logins_runs_few_password_checks() {
    // Redis answers slowly on a loaded machine; a timeout would let checks through.
    let api = TestApi::start_with(&["--redis-timeout-ms", "10000"]).await;
    api.sign_up("me@test.local").await;
    let checks = anineplus_api::auth::password::checks_run;
    let before = checks();
    let started = std::time::Instant::now();
    let body: Value = api
        .http
        .post(format!("{}/graphql", api.url))
        .json(&login_batch(
            5,
            15,
            "me@test.local",
            "correct horse battery",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ran = checks() - before;
    let seen = codes(&body);
    println!(
        "5 x 15 logins: {ran} password checks ran, errors {seen:?}, in {:?}",
        started.elapsed()
    );
    assert_eq!(ran, 9, "{seen:?}");
    assert_eq!(seen.get("RATE_LIMITED"), Some(&5), "{seen:?}");
    let reply = api
        .gql(
            "mutation { login(input: {email: \"me@test.local\", password: \"correct horse battery\"}) { token } }",
            json!({}),
            None,
        )
        .await;
    reply.assert_code("RATE_LIMITED");
    assert!(
        reply.body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Other requests of the client are not password checks and still pass.
    api.gql("{ animes { totalCount } }", json!({}), None)
        .await
        .data();
    api.stop().await;
}
