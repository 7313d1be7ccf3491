//! The registry tests' harness: a fresh database per test on the stack's PostgreSQL, a
//! registry server in-process on an ephemeral port (behind a users file with one admin
//! unless a test brings its own), and a small JSON client sending the admin's credentials.
//!
//! Nothing is skipped: when PostgreSQL is down, [`database`] fails with the
//! testkit's message naming the service and `make up`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use anineplus_registry::auth::{Access, AccessFile};
use anineplus_registry::{Config, Registry};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use anineplus_testkit::TestDatabase;

/// A database of its own on the stack's PostgreSQL, `registry_test_*`, dropped afterwards.
pub async fn database() -> TestDatabase {
    TestDatabase::create("registry_test").await
}

/// A registry server running in this process.
pub struct TestRegistry {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub registry: Registry,
    /// A client sending [`ADMIN`]'s credentials with every request.
    pub http: reqwest::Client,
    /// A client sending no credentials of its own.
    pub plain_http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anineplus_registry::Result<()>>,
}

/// A response: status and JSON body (`Value::Null` when the body is empty, a string when it
/// is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// The `error_code` of an error body.
    pub fn code(&self) -> i64 {
        self.body["error_code"].as_i64().unwrap_or(-1)
    }

    /// The `message` of an error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }

    /// Asserts a Confluent error: HTTP status, error code, and words of the message.
    pub fn assert_error(&self, status: u16, code: i64, words: &[&str]) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.code(), code, "{self:?}");
        for word in words {
            assert!(
                self.message().contains(word),
                "message lacks {word:?}: {self:?}"
            );
        }
    }
}

/// The harness's user, who may write everything; [`TestRegistry::call`] sends its credentials.
pub const ADMIN: (&str, &str) = ("admin", "admin-test-password");

/// An access configuration from a users file written as JSON.
pub fn access(file: Value, anonymous_read: bool) -> Arc<Access> {
    let file: AccessFile = serde_json::from_value(file).expect("a users file");
    Arc::new(Access::new(file, anonymous_read).expect("a valid users file"))
}

/// Only [`ADMIN`], with every permission.
pub fn admin_only() -> Arc<Access> {
    access(
        serde_json::json!({
            "users": [{"username": ADMIN.0, "algorithm": "plain", "password": ADMIN.1}],
            "permissions": [
                {"username": ADMIN.0, "operation": "Write", "resource": "Config:"},
                {"username": ADMIN.0, "operation": "Write", "resource": "Subject:*"}
            ]
        }),
        false,
    )
}

impl TestRegistry {
    /// Starts a registry (connect, migrate, serve) on `database_url`, with [`admin_only`].
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, admin_only()).await
    }

    /// Starts a registry on `database_url` behind `access`.
    pub async fn start_with(database_url: &str, access: Arc<Access>) -> Self {
        let config = Config::for_database(database_url);
        let registry = anineplus_registry::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("registry on {database_url}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(anineplus_registry::serve(
            listener,
            registry.clone(),
            access,
            shutdown.clone(),
        ));
        let admin = format!("{}:{}", ADMIN.0, ADMIN.1);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Basic {}", base64_encode(admin.as_bytes()))
                .parse()
                .unwrap(),
        );
        Self {
            url,
            registry,
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            plain_http: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    /// Stops the server, waits for it, and closes its pool.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("server task")
            .expect("server stopped cleanly");
        self.registry.store().pool().close().await;
    }

    /// A request with [`ADMIN`]'s credentials.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_as(Some(ADMIN), method, path, body).await
    }

    /// A request with the given credentials (`user`, `password`), or none.
    pub async fn call_as(
        &self,
        credentials: Option<(&str, &str)>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self
            .plain_http
            .request(method, format!("{}{path}", self.url))
            .header("accept", "application/vnd.schemaregistry.v1+json");
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        into_reply(request.send().await.expect("request sent")).await
    }

    /// A request with a raw body and content type (for malformed input).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        into_reply(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Registers `schema` (an Avro schema as JSON) under `subject`; panics unless it gets an id.
    pub async fn register(&self, subject: &str, schema: &Value) -> i64 {
        let reply = self.register_reply(subject, schema).await;
        assert_eq!(reply.status, 200, "register under {subject}: {reply:?}");
        reply.body["id"].as_i64().expect("an id")
    }

    pub async fn register_reply(&self, subject: &str, schema: &Value) -> Reply {
        self.post(
            &format!("/subjects/{subject}/versions"),
            &serde_json::json!({ "schema": schema.to_string() }),
        )
        .await
    }
}

/// Standard base64 with padding (for a basic `Authorization` header).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("response body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        content_type,
        body,
    }
}

/// A fresh database with a registry on it; [`Fixture::finish`] stops both.
pub struct Fixture {
    pub db: TestDatabase,
    pub registry: TestRegistry,
}

impl Fixture {
    pub async fn start() -> Self {
        let db = database().await;
        let registry = TestRegistry::start(&db.url).await;
        Self { db, registry }
    }

    pub async fn finish(self) {
        self.registry.stop().await;
        self.db.remove().await;
    }
}

/// An `anineplus.Anime` record schema with the given fields (JSON values).
pub fn anime(fields: Value) -> Value {
    serde_json::json!({
        "type": "record",
        "name": "Anime",
        "namespace": "anineplus",
        "fields": fields,
    })
}
