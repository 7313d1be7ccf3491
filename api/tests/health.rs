//! Readiness means "can serve": PostgreSQL, and Redis when the rate limiter fails closed.
//!
//! Scenario: Kafka or the schema registry goes down. Writes still succeed (they go to the
//! outbox), so a load balancer must keep sending traffic: `/health/ready` stays 200 with
//! `status: degraded` and the dependency `down`, and `/metrics` says the same
//! (`api_dependency_up`, `api_degraded`). Only what the API cannot serve without fails
//! readiness: PostgreSQL, and Redis under `RATE_LIMIT_FAIL=closed` (where every request
//! would be refused). Each dependency is taken down through a proxy of this test's own,
//! never by touching the shared stack.

mod common;

use std::time::Duration;

use common::{TcpProxy, TestApi};
use serde_json::{Value, json};

async fn ready(api: &TestApi) -> (u16, Value) {
    let response = api
        .http
        .get(format!("{}/health/ready", api.url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn metrics(api: &TestApi) -> String {
    api.http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn redis_addr(url: &str) -> String {
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_or_registry_down_is_degraded_not_unready() {
    let stack = anineplus_testkit::Stack::from_env();
    // Kafka: a port where nothing ever listens. The registry: a proxy, up for the start
    // (schemas are registered then), down later.
    let kafka = TcpProxy::reserve(stack.kafka_brokers.split(',').next().unwrap());
    // The stack's URL may carry credentials (`http://user:password@host:port`): the proxy
    // forwards to the host, the API keeps the credentials.
    let authority = stack.registry_url.trim_start_matches("http://");
    let (userinfo, target) = match authority.rsplit_once('@') {
        Some((userinfo, target)) => (format!("{userinfo}@"), target),
        None => (String::new(), authority),
    };
    let registry = TcpProxy::reserve(target.trim_end_matches('/'));
    registry.up().await;
    let registry_url = format!("http://{userinfo}{}", registry.addr);
    let api = TestApi::start_with(&[
        "--kafka-brokers",
        &kafka.addr,
        "--schema-registry-url",
        &registry_url,
        "--outbox-drain-secs",
        "1",
    ])
    .await;

    let (status, body) = ready(&api).await;
    assert_eq!(
        (status, &body),
        (
            200,
            &json!({"status": "degraded", "postgres": "up", "redis": "up", "kafka": "down", "registry": "up"})
        ),
        "Kafka down: still ready"
    );
    // And it does serve writes: they wait in the outbox.
    let admin = api.admin().await;
    api.create_anime(&admin, "Written while Kafka is down")
        .await;

    registry.down();
    let (status, body) = ready(&api).await;
    assert_eq!(
        (status, &body),
        (
            200,
            &json!({"status": "degraded", "postgres": "up", "redis": "up", "kafka": "down", "registry": "down"})
        ),
        "registry down too: still ready"
    );
    let text = metrics(&api).await;
    for line in [
        "api_dependency_up{dependency=\"postgres\"} 1",
        "api_dependency_up{dependency=\"redis\"} 1",
        "api_dependency_up{dependency=\"kafka\"} 0",
        "api_dependency_up{dependency=\"registry\"} 0",
        "api_degraded 1",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fails_readiness_only_when_the_rate_limiter_fails_closed() {
    let stack = anineplus_testkit::Stack::from_env();
    for (policy, down_status, down_word) in [("open", 200, "degraded"), ("closed", 503, "down")] {
        let redis = TcpProxy::reserve(&redis_addr(&stack.redis_url));
        redis.up().await;
        let redis_url = format!("redis://{}", redis.addr);
        let api =
            TestApi::start_with(&["--redis-url", &redis_url, "--rate-limit-fail", policy]).await;
        let (status, body) = ready(&api).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("up")),
            "{body}"
        );
        redis.down();
        let (status, body) = ready(&api).await;
        assert_eq!(
            (status, &body),
            (
                down_status,
                &json!({"status": down_word, "postgres": "up", "redis": "down", "kafka": "up", "registry": "up"})
            ),
            "RATE_LIMIT_FAIL={policy}, Redis down"
        );
        let text = metrics(&api).await;
        assert!(
            text.contains("api_dependency_up{dependency=\"redis\"} 0"),
            "{text}"
        );
        api.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_fails_readiness() {
    let stack = anineplus_testkit::Stack::from_env();
    let db = std::sync::Arc::new(common::TestDatabase::create("api_test").await);
    // postgres://user:password@host:port/name → the same through a proxy.
    let (credentials, rest) = db.url.split_once('@').unwrap();
    let (authority, name) = rest.split_once('/').unwrap();
    let postgres = TcpProxy::reserve(authority);
    postgres.up().await;
    let proxied = format!("{credentials}@{}/{name}", postgres.addr);
    let topic_prefix = format!("{}.", anineplus_testkit::unique("apitest"));
    let redis_prefix = format!("{}:", anineplus_testkit::unique("apitest"));
    let api = TestApi::launch(
        db.clone(),
        topic_prefix,
        redis_prefix,
        &["--database-url", &proxied],
    )
    .await;
    let (status, _) = ready(&api).await;
    assert_eq!(status, 200);
    postgres.down();
    let (status, body) = ready(&api).await;
    assert_eq!(
        (status, &body),
        (
            503,
            &json!({"status": "down", "postgres": "down", "redis": "up", "kafka": "up", "registry": "up"})
        )
    );
    postgres.up().await;
    drop(stack);
    api.stop().await;
}
