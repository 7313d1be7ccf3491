//! The API served in this process for the pipelines' end-to-end tests: a database of its
//! own, the harness's topic and index prefixes, the `index` search backend.

use std::time::Duration;

use anineplus_api::Config;
use anineplus_testkit::{TestDatabase, unique};
use clap::Parser;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Harness;

/// The `searchAnime` query with paging, as clients send it.
pub const SEARCH: &str = "query($q: String!, $first: Int, $after: String) {
  searchAnime(query: $q, first: $first, after: $after) {
    totalCount
    edges { cursor node { id title version } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// The API served in this process, with the `index` search backend.
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// A client for it.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anineplus_api::Result<()>>,
}

impl Api {
    /// Starts the API on `db`, with the harness's topic and index prefixes; waits until live.
    pub async fn start(t: &Harness, db: &TestDatabase) -> Self {
        Self::start_with(t, &db.url, &[]).await
    }

    /// [`Api::start`] on the database at `database_url`, with `overrides` (flag, value)
    /// replacing or adding to the test settings (benchmarks lift the rate limit, say).
    pub async fn start_with(t: &Harness, database_url: &str, overrides: &[(&str, &str)]) -> Self {
        let redis_prefix = format!("{}:", unique("api"));
        let mut settings: Vec<(&str, &str)> = vec![
            ("--env", "dev"),
            ("--database-url", database_url),
            ("--database-max-connections", "5"),
            ("--kafka-brokers", &t.stack.kafka_brokers),
            ("--kafka-topic-prefix", &t.topic_prefix),
            ("--schema-registry-url", &t.stack.registry_url),
            ("--redis-url", &t.stack.redis_url),
            ("--redis-key-prefix", &redis_prefix),
            ("--admin-emails", anineplus_api::config::DEV_ADMIN_EMAIL),
            ("--outbox-poll-ms", "1000"),
            ("--search-backend", "index"),
            ("--elasticsearch-url", &t.stack.search_url),
            ("--index-prefix", &t.index_prefix),
        ];
        for &(flag, value) in overrides {
            match settings.iter_mut().find(|(f, _)| *f == flag) {
                Some(setting) => setting.1 = value,
                None => settings.push((flag, value)),
            }
        }
        let args =
            std::iter::once("anineplus-api").chain(settings.iter().flat_map(|(f, v)| [*f, *v]));
        let config = Config::parse_from(args);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(anineplus_api::serve(config, listener, shutdown.clone()));
        let api = Api {
            url,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown,
            task,
        };
        for _ in 0..200 {
            assert!(!api.task.is_finished(), "the API stopped during start-up");
            let live = api
                .http
                .get(format!("{}/health/live", api.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return api;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the API did not become live within 10 s");
    }

    /// Runs a GraphQL request, asserting it has no errors; returns `data`.
    pub async fn gql(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
        cid: &str,
    ) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("x-correlation-id", cid)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// `searchAnime(query, first, after)`.
    pub async fn search(&self, query: &str, first: i64, after: Option<&str>) -> Value {
        let data = self
            .gql(
                SEARCH,
                json!({ "q": query, "first": first, "after": after }),
                None,
                "test-search",
            )
            .await;
        data["searchAnime"].clone()
    }

    /// Stops the API and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("API task")
            .expect("the API stopped cleanly");
    }
}
