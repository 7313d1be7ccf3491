//! Rate limiting: exact under concurrency, RATE_LIMITED with retry-after.

mod common;

use common::TestApi;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_against_a_limit_of_100() {
    let api = TestApi::start_with(&[
        "--rate-limit-requests",
        "100",
        "--rate-limit-window-secs",
        "120",
        "--redis-timeout-ms",
        "10000",
    ])
    .await;
    let body = json!({"query": "{ __typename }"});
    let url = format!("{}/graphql", api.url);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let http = api.http.clone();
            let url = url.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let response = http.post(&url).json(&body).send().await.expect("sent");
                let status = response.status().as_u16();
                let retry = response.headers().get("retry-after").is_some();
                let body: serde_json::Value = response.json().await.unwrap();
                (status, retry, body)
            })
        })
        .collect();
    let mut passed = 0;
    let mut limited = 0;
    for task in tasks {
        let (status, retry, body) = task.await.unwrap();
        match status {
            200 => passed += 1,
            429 => {
                assert!(retry, "429 without retry-after");
                assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
                limited += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((passed, limited), (100, 900));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_or_closed_as_configured() {
    let stack = anineplus_testkit::Stack::from_env();
    let target = stack
        .redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    for (policy, expected) in [("open", 200), ("closed", 429)] {
        let proxy = common::TcpProxy::reserve(&target);
        proxy.up().await;
        let redis_url = format!("redis://{}", proxy.addr);
        let api =
            TestApi::start_with(&["--redis-url", &redis_url, "--rate-limit-fail", policy]).await;
        let admin = api.admin().await;
        let anime = api.create_anime(&admin, "Cached").await;
        let query = "query($id: ID!) { anime(id: $id) { title } }";
        assert_eq!(
            api.gql(query, json!({"id": anime}), None).await.data()["anime"]["title"],
            "Cached"
        );

        proxy.down();
        let reply = api.gql(query, json!({"id": anime}), None).await;
        assert_eq!(reply.status, expected, "policy {policy}: {reply:?}");
        if expected == 200 {
            // The cache is bypassed, reads still work.
            assert_eq!(reply.data()["anime"]["title"], "Cached");
        } else {
            reply.assert_code("RATE_LIMITED");
        }
        api.stop().await;
    }
}

/// Scenario: requests with a refused token (401) count against the client like any other
/// (before: they were never counted, so guessing tokens was unlimited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_count_against_the_client() {
    let api = TestApi::start_with(&[
        "--rate-limit-requests",
        "5",
        "--rate-limit-window-secs",
        "120",
    ])
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let reply = api
            .gql("{ __typename }", json!({}), Some("not.a.token"))
            .await;
        statuses.push(reply.status);
    }
    println!("statuses with a bad token: {statuses:?}");
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429, 429]);
    api.stop().await;
}

/// Scenario: a client on IPv6 (`::1` here) is counted under its /64, so rotating through
/// the addresses of one allocation does not reset its allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_counted_by_their_64() {
    use clap::Parser;
    let stack = anineplus_testkit::Stack::from_env();
    let db = common::TestDatabase::create("api_test").await;
    let topic_prefix = format!("{}.", anineplus_testkit::unique("apitest"));
    let redis_prefix = format!("{}:", anineplus_testkit::unique("apitest"));
    let mut args = vec!["anineplus-api".to_owned()];
    args.extend(common::base_args(
        &stack,
        &db.url,
        &topic_prefix,
        &redis_prefix,
    ));
    args.extend(["--rate-limit-requests", "2"].map(str::to_owned));
    let config = anineplus_api::Config::parse_from(args);
    let listener = tokio::net::TcpListener::bind("[::1]:0")
        .await
        .expect("IPv6 loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(anineplus_api::serve(config, listener, shutdown.clone()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..60 {
        match http.get(format!("{url}/health/live")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    for _ in 0..3 {
        let response = http
            .post(format!("{url}/graphql"))
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let redis = redis::Client::open(stack.redis_url.as_str()).unwrap();
    let mut redis = redis.get_multiplexed_async_connection().await.unwrap();
    let count: Option<u64> = redis::cmd("GET")
        .arg(format!("{redis_prefix}rl:ip:::/64"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(count, Some(3), "the client is keyed by its /64");
    shutdown.cancel();
    server.await.unwrap().unwrap();
    common::delete_topics(&stack, &topic_prefix).await;
    db.remove().await;
}
