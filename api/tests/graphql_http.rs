//! GraphQL over HTTP: the `application/graphql-response+json` media type when asked,
//! POSTs only as `application/json`, and 1-based error locations.

mod common;

use common::TestApi;
use serde_json::{Value, json};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Posts `body` with `headers`; returns status, content type and the parsed body.
async fn post(api: &TestApi, body: String, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let mut request = api.http.post(format!("{}/graphql", api.url)).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn query(q: &str) -> String {
    json!({ "query": q }).to_string()
}

/// Scenario: a client that accepts `application/graphql-response+json` gets it, with 400
/// and no `data` for documents that cannot run; a client that does not keeps the
/// `application/json` answers (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_response_json_when_asked() {
    let api = TestApi::start_with(&["--max-aliases", "1"]).await;
    let asks = [
        ("content-type", "application/json"),
        (
            "accept",
            "application/graphql-response+json, application/json;q=0.9",
        ),
    ];
    for bad in [
        "{ animes(",
        "{ nope }",
        "{ a: animes { totalCount } b: animes { totalCount } }",
    ] {
        let (status, content_type, body) = post(&api, query(bad), &asks).await;
        println!("{bad}: {status} {content_type} {body}");
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(content_type, GRAPHQL_RESPONSE, "{bad}");
        assert!(body.get("data").is_none(), "{bad}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let (status, content_type, body) = post(&api, query("{ animes { totalCount } }"), &asks).await;
    assert_eq!((status, content_type.as_str()), (200, GRAPHQL_RESPONSE));
    assert_eq!(body["data"]["animes"]["totalCount"], 0);
    // A field error still answers 200, with its data.
    let (status, _, body) = post(&api, query("{ comments { totalCount } }"), &asks).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("data").is_some(), "{body}");

    let json_only = [("content-type", "application/json")];
    let (status, content_type, body) = post(&api, query("{ nope }"), &json_only).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    api.stop().await;
}

/// Scenario: a cross-site page can POST `text/plain` or a form without a preflight (before:
/// both executed, a sign-up included). Only `application/json` executes; the rest is 415.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_json_posts_execute() {
    let api = TestApi::start().await;
    let sign_up = query(
        "mutation { signUp(input: {email: \"csrf@test.local\", name: \"C\", password: \"correct horse battery\"}) { token } }",
    );
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<_> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let (status, _, body) = post(&api, sign_up.clone(), &headers).await;
        println!("{content_type:?}: {status} {body}");
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "a non-JSON post executed");
    let (status, _, body) = post(
        &api,
        query("{ animes { totalCount } }"),
        &[("content-type", "application/json; charset=utf-8")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    api.stop().await;
}

/// Scenario: every error location is 1-based (before: `line 0, column 0` on the errors the
/// edge raised itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_locations_are_one_based() {
    let api = TestApi::start_with(&["--max-aliases", "1"]).await;
    let json_only = [("content-type", "application/json")];
    for q in [
        "{ animes(",
        "{\n  nope\n}",
        "{ a: animes { totalCount } b: animes { totalCount } }",
        "{ comments { totalCount } }",
    ] {
        let (_, _, body) = post(&api, query(q), &json_only).await;
        let errors = body["errors"].as_array().expect("errors");
        for error in errors {
            for location in error["locations"].as_array().into_iter().flatten() {
                let line = location["line"].as_u64().unwrap();
                let column = location["column"].as_u64().unwrap();
                assert!(line >= 1 && column >= 1, "{q}: {error}");
            }
        }
        println!("{q:?}: {}", body["errors"]);
    }
    // The unknown field is on line 2, column 3.
    let (_, _, body) = post(&api, query("{\n  nope\n}"), &json_only).await;
    assert_eq!(
        body["errors"][0]["locations"],
        json!([{"line": 2, "column": 3}])
    );
    api.stop().await;
}
