//! Addresses of the local stack and connections that fail loudly when a service is down.

use std::time::Duration;

use anineplus_connectors::{kafka, search};
use elasticsearch::Elasticsearch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// How long a probe waits for a service before declaring it down, by default.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A service of the stack could not be reached.
#[derive(Debug, thiserror::Error)]
#[error(
    "{service} is not reachable at {address}: {reason}. \
     Start the stack with `make up` (its log: .stack/logs/{log}.log)"
)]
pub struct ServiceDown {
    /// Which service ("Kafka", "PostgreSQL", ...).
    pub service: &'static str,
    /// Where we looked for it.
    pub address: String,
    /// What went wrong.
    pub reason: String,
    log: &'static str,
}

/// The services' addresses, read from the environment with the local stack's defaults.
#[derive(Debug, Clone)]
pub struct Stack {
    /// `KAFKA_BROKERS`, default `127.0.0.1:9092`.
    pub kafka_brokers: String,
    /// `ELASTICSEARCH_URL`, default `http://127.0.0.1:9200`.
    pub search_url: String,
    /// `DATABASE_URL`, default the `anineplus` database on `127.0.0.1:5432`.
    pub database_url: String,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `SCHEMA_REGISTRY_URL`, default `http://127.0.0.1:8081` (the registry `make up` starts),
    /// with the `admin` credentials `make up` generated when it did (userinfo in the URL).
    pub registry_url: String,
    /// How long each probe waits before declaring its service down (10 s).
    pub probe_timeout: Duration,
}

/// Default `DATABASE_URL` of the local stack (the role and database `make up` creates).
pub const DEFAULT_DATABASE_URL: &str = "postgres://anineplus:anineplus@127.0.0.1:5432/anineplus";
/// Default `SCHEMA_REGISTRY_URL` of the local stack.
pub use anineplus_schemas::DEFAULT_REGISTRY_URL;
/// Default `REDIS_URL` of the local stack.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The registry `make up` starts, with the credentials it generated for tests and operators
/// (`admin` in `$STACK_DIR/registry/credentials`, lines of `user:password`); without that
/// file, [`DEFAULT_REGISTRY_URL`] as is.
fn stack_registry_url() -> String {
    registry_url_as("admin").unwrap_or_else(|| DEFAULT_REGISTRY_URL.to_owned())
}

/// The registry `make up` starts as `user` (one of the clients it generated credentials
/// for: `admin`, `schemas`, `api`, `indexer`, `logs`, `tools`), if that file names it; on
/// `REGISTRY_LISTEN` when set (the cluster mode's 127.0.0.1:18081), else 127.0.0.1:8081.
pub fn registry_url_as(user: &str) -> Option<String> {
    let stack_dir = std::env::var_os("STACK_DIR")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.stack"));
    let text = std::fs::read_to_string(stack_dir.join("registry/credentials")).ok()?;
    text.lines()
        .find(|line| line.split(':').next() == Some(user))
        .map(|userinfo| {
            let listen = std::env::var("REGISTRY_LISTEN")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
            format!("http://{userinfo}@{listen}")
        })
}

/// `http://user:***@host` for `http://user:password@host` (for messages).
fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Stack {
    /// Reads the addresses from the environment.
    pub fn from_env() -> Self {
        Self {
            kafka_brokers: env_or("KAFKA_BROKERS", kafka::DEFAULT_BROKERS),
            search_url: env_or("ELASTICSEARCH_URL", search::DEFAULT_URL),
            database_url: env_or("DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url: env_or("REDIS_URL", DEFAULT_REDIS_URL),
            registry_url: std::env::var("SCHEMA_REGISTRY_URL")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(stack_registry_url),
            probe_timeout: PROBE_TIMEOUT,
        }
    }

    /// Checks that a Kafka broker answers a metadata request; returns the broker count.
    pub async fn kafka(&self) -> Result<usize, ServiceDown> {
        let brokers = self.kafka_brokers.clone();
        let timeout = self.probe_timeout;
        let down = |reason: String| ServiceDown {
            service: "Kafka",
            address: self.kafka_brokers.clone(),
            reason,
            log: "kafka",
        };
        let probe = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = kafka::consumer_config(&brokers, "testkit-probe")
                .create()
                .map_err(|e| e.to_string())?;
            consumer
                .fetch_metadata(None, timeout)
                .map(|m| m.brokers().len())
                .map_err(|e| e.to_string())
        });
        probe.await.map_err(|e| down(e.to_string()))?.map_err(down)
    }

    /// A search client whose engine answered `GET /`; returns it with the engine's version.
    pub async fn search(&self) -> Result<(Elasticsearch, String), ServiceDown> {
        let down = |reason: String| ServiceDown {
            service: "Search engine (OpenSearch/Elasticsearch)",
            address: self.search_url.clone(),
            reason,
            log: "opensearch",
        };
        let client = search::client(&self.search_url, self.probe_timeout)
            .map_err(|e| down(e.to_string()))?;
        let response = client
            .info()
            .send()
            .await
            .map_err(|e| down(e.to_string()))?;
        let body: serde_json::Value = response
            .error_for_status_code()
            .map_err(|e| down(e.to_string()))?
            .json()
            .await
            .map_err(|e| down(e.to_string()))?;
        let version = format!(
            "{} {}",
            body["version"]["distribution"]
                .as_str()
                .unwrap_or("elasticsearch"),
            body["version"]["number"].as_str().unwrap_or("?")
        );
        Ok((client, version))
    }

    /// A small PostgreSQL pool that has completed one round trip.
    pub async fn postgres(&self) -> Result<PgPool, ServiceDown> {
        let down = |reason: String| ServiceDown {
            service: "PostgreSQL",
            address: redact_password(&self.database_url),
            reason,
            log: "postgres",
        };
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(self.probe_timeout)
            .connect(&self.database_url)
            .await
            .map_err(|e| down(e.to_string()))?;
        sqlx::query("SELECT 1")
            .execute(&pool)
            .await
            .map_err(|e| down(e.to_string()))?;
        Ok(pool)
    }

    /// A multiplexed Redis connection that has answered `PING`.
    pub async fn redis(&self) -> Result<redis::aio::MultiplexedConnection, ServiceDown> {
        let down = |reason: String| ServiceDown {
            service: "Redis",
            address: self.redis_url.clone(),
            reason,
            log: "redis",
        };
        let client =
            redis::Client::open(self.redis_url.as_str()).map_err(|e| down(e.to_string()))?;
        let mut conn = tokio::time::timeout(
            self.probe_timeout,
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| down(format!("no answer within {:?}", self.probe_timeout)))?
        .map_err(|e| down(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| down(e.to_string()))?;
        Ok(conn)
    }
}

impl Stack {
    /// Checks that the schema registry answers `GET /schemas/types`; returns its base URL.
    pub async fn registry(&self) -> Result<String, ServiceDown> {
        let down = |reason: String| ServiceDown {
            service: "Schema registry",
            address: without_password(&self.registry_url),
            reason,
            log: "registry",
        };
        let client = reqwest::Client::builder()
            .timeout(self.probe_timeout)
            .no_proxy()
            .build()
            .map_err(|e| down(e.to_string()))?;
        client
            .get(format!(
                "{}/schemas/types",
                self.registry_url.trim_end_matches('/')
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| down(e.to_string()))?;
        Ok(self.registry_url.trim_end_matches('/').to_owned())
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for error messages.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_passwords_stay_out_of_messages() {
        assert_eq!(
            without_password("http://admin:s3cret@127.0.0.1:8081"),
            "http://admin:***@127.0.0.1:8081"
        );
        assert_eq!(
            without_password("http://127.0.0.1:8081"),
            "http://127.0.0.1:8081"
        );
    }

    use super::*;

    /// A stack whose every address points at a closed port: each probe must fail, name its
    /// service and address, and point at `make up`. This is the "service down" behaviour the
    /// integration tests rely on.
    fn nowhere() -> Stack {
        Stack {
            kafka_brokers: "127.0.0.1:1".into(),
            search_url: "http://127.0.0.1:1".into(),
            database_url: "postgres://u:secret@127.0.0.1:1/db".into(),
            redis_url: "redis://127.0.0.1:1".into(),
            registry_url: "http://127.0.0.1:1".into(),
            probe_timeout: Duration::from_secs(2),
        }
    }

    fn assert_clear(err: ServiceDown, service: &str, address: &str) {
        let text = err.to_string();
        assert!(text.starts_with(service), "{text}");
        assert!(text.contains(address), "{text}");
        assert!(text.contains("make up"), "{text}");
        assert!(!text.contains("secret"), "password leaked: {text}");
    }

    #[tokio::test]
    async fn postgres_down_is_named() {
        let err = nowhere().postgres().await.unwrap_err();
        assert_clear(err, "PostgreSQL", "127.0.0.1:1");
    }

    #[tokio::test]
    async fn redis_down_is_named() {
        let err = nowhere().redis().await.unwrap_err();
        assert_clear(err, "Redis", "127.0.0.1:1");
    }

    #[tokio::test]
    async fn search_down_is_named() {
        let err = nowhere().search().await.unwrap_err();
        assert_clear(err, "Search engine", "127.0.0.1:1");
    }

    #[tokio::test]
    async fn kafka_down_is_named() {
        let err = nowhere().kafka().await.unwrap_err();
        assert_clear(err, "Kafka", "127.0.0.1:1");
    }

    #[tokio::test]
    async fn registry_down_is_named() {
        let err = nowhere().registry().await.unwrap_err();
        assert_clear(err, "Schema registry", "127.0.0.1:1");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://a:b@h:5432/d"),
            "postgres://a:***@h:5432/d"
        );
    }
}
