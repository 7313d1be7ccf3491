//! The API tests' harness: a fresh database per test on the stack's PostgreSQL, the API
//! served in-process on 127.0.0.1:0 with a unique Kafka topic prefix and Redis key prefix,
//! a GraphQL client, and a Kafka reader that decodes through the registry.
//!
//! Nothing is skipped: a missing service fails the test with the testkit's message.

#![allow(dead_code, unreachable_pub)]

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_api::Config;
use anineplus_schemas::{Codec, TopicValue};
use anineplus_testkit::{Stack, unique};
use clap::Parser;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The JWT secret of test servers.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";
/// An email that signs up as ADMIN on test servers.
pub const ADMIN_EMAIL: &str = "admin@test.local";

/// A database of its own (testkit's), dropped by [`TestApi::stop`] or on drop.
pub use anineplus_testkit::TestDatabase;

/// A GraphQL answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// Asserts success and returns `data`.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {self:?}"
        );
        &self.body["data"]
    }

    /// Asserts an error with `code`.
    pub fn assert_code(&self, code: &str) {
        assert_eq!(self.code(), Some(code), "{self:?}");
    }

    /// Asserts an error with `code` whose first message contains `words`.
    pub fn assert_error(&self, code: &str, words: &str) {
        self.assert_code(code);
        let message = self.body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(words), "message lacks {words:?}: {self:?}");
    }

    /// How many errors carry `code` (a batch or aliases answer one per field).
    pub fn count_code(&self, code: &str) -> usize {
        self.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["extensions"]["code"] == code)
            .count()
    }
}

/// An API served in this process.
pub struct TestApi {
    pub url: String,
    pub db: Arc<TestDatabase>,
    pub pool: sqlx::PgPool,
    pub topic_prefix: String,
    pub redis_prefix: String,
    pub http: reqwest::Client,
    pub stack: Stack,
    shutdown: CancellationToken,
    task: JoinHandle<anineplus_api::Result<()>>,
    /// Stops the server when a test ends without [`TestApi::stop`] (a panic), so that it
    /// does not keep reconnecting to the database [`TestDatabase`]'s drop removes.
    _stop_on_drop: tokio_util::sync::DropGuard,
}

/// The command-line flags of a test server (shared by in-process servers and the binary).
pub fn base_args(
    stack: &Stack,
    db_url: &str,
    topic_prefix: &str,
    redis_prefix: &str,
) -> Vec<String> {
    [
        "--env",
        "dev",
        "--database-url",
        db_url,
        "--database-max-connections",
        "10",
        "--kafka-brokers",
        &stack.kafka_brokers,
        "--schema-registry-url",
        &stack.registry_url,
        "--redis-url",
        &stack.redis_url,
        "--kafka-topic-prefix",
        topic_prefix,
        "--redis-key-prefix",
        redis_prefix,
        "--jwt-secret",
        SECRET,
        "--admin-emails",
        ADMIN_EMAIL,
        "--outbox-poll-ms",
        "1000",
        // Read-your-writes search without an indexer; the index backend is tested end to
        // end in `pipelines/indexer/tests/end_to_end.rs` and in `search.rs`.
        "--search-backend",
        "postgres",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// A free loopback port, for a server the test starts (`--listen 127.0.0.1:<port>`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the `anineplus-api` binary `child` at `url` answers `/health/live` (true), or
/// exits (false); panics after 30 s of neither.
pub async fn wait_binary_live(http: &reqwest::Client, url: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if http
            .get(format!("{url}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the API neither started nor stopped within 30 s");
}

impl TestApi {
    /// Starts an API with the test defaults plus `args` (command-line flags).
    pub async fn start_with(args: &[&str]) -> Self {
        let db = Arc::new(TestDatabase::create("api_test").await);
        let topic_prefix = format!("{}.", unique("apitest"));
        let redis_prefix = format!("{}:", unique("apitest"));
        Self::launch(db, topic_prefix, redis_prefix, args).await
    }

    /// Another server on the same database, topics and Redis keys (a second instance, or
    /// a restart after [`TestApi::stop`]).
    pub async fn another(&self, args: &[&str]) -> Self {
        Self::launch(
            self.db.clone(),
            self.topic_prefix.clone(),
            self.redis_prefix.clone(),
            args,
        )
        .await
    }

    pub async fn launch(
        db: Arc<TestDatabase>,
        topic_prefix: String,
        redis_prefix: String,
        args: &[&str],
    ) -> Self {
        let stack = Stack::from_env();
        let mut all = vec!["anineplus-api".to_owned()];
        all.extend(base_args(&stack, &db.url, &topic_prefix, &redis_prefix));
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let config = Config::parse_from(all);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(anineplus_api::serve(config, listener, shutdown.clone()));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let api = Self {
            url,
            pool: sqlx::PgPool::connect(&db.url).await.unwrap(),
            db,
            topic_prefix,
            redis_prefix,
            http,
            stack,
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            task,
        };
        api.wait_live().await;
        api
    }

    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn wait_live(&self) {
        for _ in 0..200 {
            if self.task.is_finished() {
                panic!("the API stopped during start-up");
            }
            // The listener is bound before start-up; it answers once migrations ran.
            let live = self
                .http
                .get(format!("{}/health/live", self.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the API did not become live within 10 s");
    }

    /// Stops the server (draining the relay) and checks it stopped cleanly; the last
    /// instance on its database also deletes the test's topics.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("server task")
            .expect("server stopped cleanly");
        self.pool.close().await;
        if Arc::strong_count(&self.db) == 1 {
            delete_topics(&self.stack, &self.topic_prefix).await;
        }
    }

    /// A GraphQL request with optional token and extra headers.
    pub async fn gql_with(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> Reply {
        self.gql_with(query, variables, token, &[]).await
    }

    /// Signs up and returns `(token, user id)`.
    pub async fn sign_up(&self, email: &str) -> (String, String) {
        let reply = self
            .gql(
                "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id email role } } }",
                json!({"i": {"email": email, "name": "Tester", "password": "correct horse battery"}}),
                None,
            )
            .await;
        let data = reply.data();
        (
            data["signUp"]["token"].as_str().unwrap().to_owned(),
            data["signUp"]["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// A `login` mutation for `email` and `password`, with no token.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.gql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({"i": {"email": email, "password": password}}),
            None,
        )
        .await
    }

    /// Creates an organization as `token`'s user; returns its id.
    pub async fn create_organization(&self, token: &str, name: &str, slug: &str) -> String {
        let reply = self
            .gql(
                "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }",
                json!({"i": {"name": name, "slug": slug}}),
                Some(token),
            )
            .await;
        reply.data()["createOrganization"]["id"]
            .as_str()
            .expect("an organization id")
            .to_owned()
    }

    /// A signed-up admin's token.
    pub async fn admin(&self) -> String {
        self.sign_up(ADMIN_EMAIL).await.0
    }

    /// A signed-up user's `(token, id)` with a unique email.
    pub async fn user(&self) -> (String, String) {
        self.sign_up(&format!("{}@test.local", unique("user")))
            .await
    }

    /// Creates an anime as `admin`; returns its id.
    pub async fn create_anime(&self, admin: &str, title: &str) -> String {
        let reply = self
            .gql(
                "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
                json!({"i": {"title": title, "synopsis": "s", "genres": ["Action"], "status": "AIRING", "releaseYear": 2020}}),
                Some(admin),
            )
            .await;
        reply.data()["createAnime"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Rows in the outbox.
    pub async fn outbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until every outbox row is published.
    pub async fn wait_published(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            if pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} outbox rows still unpublished after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The full Kafka topic name of `topic`.
    pub fn topic(&self, topic: anineplus_schemas::Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }
}

/// One record read back from Kafka.
#[derive(Debug)]
pub struct Record<T> {
    pub key: String,
    pub partition: i32,
    pub headers: Vec<(String, String)>,
    pub value: T,
}

impl<T> Record<T> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads records of `topic` from the beginning until `done` says so.
pub async fn read_until<T: TopicValue>(
    stack: &Stack,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Record<T>]) -> bool,
) -> Vec<Record<T>> {
    let consumer: StreamConsumer =
        anineplus_connectors::kafka::consumer_config(&stack.kafka_brokers, &unique("apitest"))
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let codec = Codec::new(&stack.registry_url);
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&out) {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} records on {topic} after {timeout:?}", out.len()))
            .expect("kafka message");
        let value = codec
            .decode::<T>(message.payload().expect("a value"))
            .await
            .expect("decodes through the registry");
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            partition: message.partition(),
            headers,
            value,
        });
    }
    out
}

/// Reads `count` records of `topic` from the beginning with an independent consumer,
/// decoding each value through the registry with [`Codec`].
pub async fn read_records<T: TopicValue>(
    stack: &Stack,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Vec<Record<T>> {
    read_until(stack, topic, timeout, |records| records.len() >= count).await
}

/// A TCP proxy to `target` on a fixed local port, to take a service "down" and bring it
/// back without touching the shared stack.
pub struct TcpProxy {
    pub addr: String,
    target: String,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// A proxy address that is not listening yet: a free port below Linux's ephemeral range
    /// (32768-60999), so that no outgoing connection of another test takes it while the
    /// proxy is down.
    pub fn reserve(target: &str) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let mut seed = RandomState::new().hash_one(std::time::Instant::now());
        let port = loop {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let port = 20_000 + (seed >> 33) as u16 % 12_000;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        Self {
            addr: format!("127.0.0.1:{port}"),
            target: target.to_owned(),
            tasks: Default::default(),
        }
    }

    /// Starts forwarding ("the service is up").
    pub async fn up(&self) {
        let listener = TcpListener::bind(&self.addr).await.unwrap();
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops listening and cuts every connection ("the service is down").
    pub fn down(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// Deletes the aggregate topics under `prefix` (best effort: tests leave no topics behind).
pub async fn delete_topics(stack: &Stack, prefix: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let Ok(admin) = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let names: Vec<String> = anineplus_api::outbox::relay::TOPICS
        .iter()
        .map(|t| format!("{prefix}{}", t.name()))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let _ = admin.delete_topics(&names, &options).await;
}
