//! The API's configuration: one typed struct, every field documented, each overridable by an
//! environment variable, with defaults that run against the local stack, except one: the
//! environment is production unless `API_ENV=dev` says otherwise, so a forgotten setting
//! never means the public dev JWT secret, GraphiQL or introspection.
//!
//! [`Config`] is the process's argument struct (clap), kept in the library so that tests
//! start the API in-process with exactly the binary's parsing; the flags it shares with
//! the other binaries (Kafka, registry, search) are the groups of `anineplus-args`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The development JWT secret, accepted only with `API_ENV=dev`.
pub const DEV_JWT_SECRET: &str = "anineplus-dev-secret-do-not-use-in-production";
/// The development admin list, used only with `API_ENV=dev` when `ADMIN_EMAILS` is unset.
pub const DEV_ADMIN_EMAIL: &str = "admin@anineplus.local";

/// Where the process runs: development relaxes a few protections for convenience, so it
/// must be asked for (`API_ENV=dev`); anything unset runs as production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// GraphiQL, introspection, field suggestions, a default JWT secret and admin.
    #[value(alias = "development")]
    Dev,
    /// None of the above: secrets must be configured. The default.
    #[value(alias = "production")]
    Prod,
}

/// What to do with a request when Redis cannot answer the rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailPolicy {
    /// Let the request through (availability first).
    Open,
    /// Refuse it with `RATE_LIMITED` (protection first).
    Closed,
}

/// Which engine answers `searchAnime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchBackendKind {
    /// The search index kept by the indexer (`<INDEX_PREFIX>-anime`).
    Index,
    /// PostgreSQL `ILIKE` on the anime table (no indexer needed; read-your-writes).
    Postgres,
}

/// Configuration of the `anineplus-api` process.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "anineplus-api",
    version,
    about = "AnineePlus GraphQL API",
    args_override_self = true
)]
pub struct Config {
    /// Address the HTTP server listens on (`POST /graphql`, `/health/*`, `/metrics`).
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// `prod` (the default) or `dev` (GraphiQL, introspection, a dev JWT secret and admin).
    #[arg(long, env = "API_ENV", value_enum, default_value = "prod")]
    pub env: Environment,
    /// PostgreSQL database of the domain and the outbox; migrations run at start.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://anineplus:anineplus@127.0.0.1:5432/anineplus"
    )]
    pub database_url: String,
    /// Maximum PostgreSQL connections of the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,
    /// Redis: rate limits and the read cache.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every Redis key this process writes (tests use a unique one).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "anineplus:api:")]
    pub redis_key_prefix: String,
    /// Longest Redis call, in milliseconds; slower calls count as Redis being down (cache
    /// miss; the rate limiter applies `RATE_LIMIT_FAIL`).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,
    /// Kafka, of the outbox relay.
    #[command(flatten)]
    pub kafka: anineplus_args::KafkaArgs,
    /// Prefix put before every topic name (`<prefix>anime`); empty in production.
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    pub kafka_topic_prefix: String,
    /// The Confluent-compatible schema registry.
    #[command(flatten)]
    pub registry: anineplus_args::RegistryArgs,
    /// Shipping of the API's logs to the `<prefix>logs` topic (the binary's, not the
    /// library's: `run` never installs logging).
    #[command(flatten)]
    pub logs: anineplus_args::LogShippingArgs,
    /// HS256 secret of the JWTs; a dev default exists only with `API_ENV=dev`.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Optional JWKS URL: RS256 tokens whose `kid` names one of its keys are accepted too
    /// (same `iss`, `aud` and claim rules). Fetched at start (a failure stops the start).
    #[arg(long, env = "JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// How often the JWKS is fetched again, in seconds.
    #[arg(long, env = "JWT_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub jwt_jwks_refresh_secs: u64,
    /// `iss` claim issued and required.
    #[arg(long, env = "JWT_ISSUER", default_value = "anineplus")]
    pub jwt_issuer: String,
    /// `aud` claim issued and required.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "anineplus-api")]
    pub jwt_audience: String,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "JWT_TTL_SECS", default_value_t = 3600)]
    pub jwt_ttl_secs: u64,
    /// Emails that become ADMIN when they sign up (comma separated). Dev default:
    /// `admin@anineplus.local`; no default in production.
    #[arg(long, env = "ADMIN_EMAILS", value_delimiter = ',')]
    pub admin_emails: Vec<String>,
    /// Allowed CORS origins (comma separated); `*` allows any; empty allows none.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "API_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Deepest accepted query.
    #[arg(long, env = "API_MAX_DEPTH", default_value_t = 10)]
    pub max_depth: usize,
    /// Highest accepted query complexity (one per field, lists times their page size).
    #[arg(long, env = "API_MAX_COMPLEXITY", default_value_t = 1000)]
    pub max_complexity: usize,
    /// Most aliases in one query document.
    #[arg(long, env = "API_MAX_ALIASES", default_value_t = 15)]
    pub max_aliases: usize,
    /// Most operations in one request (document operations and batch entries).
    #[arg(long, env = "API_MAX_OPERATIONS", default_value_t = 5)]
    pub max_operations: usize,
    /// Largest page a client may ask for; larger `first` values are refused.
    #[arg(long, env = "API_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: usize,
    /// Most `_entities` representations in one document (each also counts its selection
    /// against `API_MAX_COMPLEXITY`).
    #[arg(long, env = "API_MAX_ENTITIES", default_value_t = 100)]
    pub max_entities: usize,
    /// Deadline of the query operations of one HTTP request, in milliseconds: past it they
    /// stop with `TIMEOUT` (mutations run to their end).
    #[arg(long, env = "API_REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,
    /// Most resolvers of one operation that wait on the database at once, so one request
    /// cannot take the whole pool.
    #[arg(long, env = "API_RESOLVER_CONCURRENCY", default_value_t = 4)]
    pub resolver_concurrency: usize,
    /// Requests allowed per rate-limit window, per user (when signed in) and per client IP.
    #[arg(long, env = "RATE_LIMIT_REQUESTS", default_value_t = 600)]
    pub rate_limit_requests: u64,
    /// Length of a rate-limit window, in seconds.
    #[arg(long, env = "RATE_LIMIT_WINDOW_SECS", default_value_t = 60)]
    pub rate_limit_window_secs: u64,
    /// Password checks (each `login` and `signUp`, aliased or batched ones included)
    /// allowed per client per rate-limit window.
    #[arg(long, env = "RATE_LIMIT_PASSWORD_CHECKS", default_value_t = 10)]
    pub rate_limit_password_checks: u64,
    /// Consecutive failed logins of one account before its backoff starts.
    #[arg(long, env = "RATE_LIMIT_LOGIN_FAILURES", default_value_t = 5)]
    pub rate_limit_login_failures: u64,
    /// First backoff of an account, in milliseconds; it doubles with each further failure.
    #[arg(long, env = "RATE_LIMIT_LOGIN_BACKOFF_MS", default_value_t = 1000)]
    pub rate_limit_login_backoff_ms: u64,
    /// Longest backoff of an account, in seconds.
    #[arg(long, env = "RATE_LIMIT_LOGIN_MAX_BACKOFF_SECS", default_value_t = 900)]
    pub rate_limit_login_max_backoff_secs: u64,
    /// Behaviour when Redis is down: `open` lets requests through, `closed` refuses them.
    #[arg(long, env = "RATE_LIMIT_FAIL", value_enum, default_value = "open")]
    pub rate_limit_fail: FailPolicy,
    /// Time to live of cached reads, in seconds.
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 60)]
    pub cache_ttl_secs: u64,
    /// Slow fallback poll of the outbox relay, in milliseconds (it normally wakes on NOTIFY).
    #[arg(long, env = "OUTBOX_POLL_MS", default_value_t = 5000)]
    pub outbox_poll_ms: u64,
    /// Rows the relay publishes per batch.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 500)]
    pub outbox_batch: i64,
    /// How long published outbox rows are kept before pruning, in seconds.
    #[arg(long, env = "OUTBOX_RETENTION_SECS", default_value_t = 3600)]
    pub outbox_retention_secs: u64,
    /// How often the relay prunes published outbox rows, in seconds.
    #[arg(long, env = "OUTBOX_PRUNE_SECS", default_value_t = 60)]
    pub outbox_prune_secs: u64,
    /// How long shutdown waits for the relay to drain, in seconds.
    #[arg(long, env = "OUTBOX_DRAIN_SECS", default_value_t = 10)]
    pub outbox_drain_secs: u64,
    /// What serves `searchAnime`: `index` (the indexer's search index) or `postgres`.
    #[arg(long, env = "SEARCH_BACKEND", value_enum, default_value = "index")]
    pub search_backend: SearchBackendKind,
    /// The search engine of the `index` search backend.
    #[command(flatten)]
    pub search: anineplus_args::SearchArgs,
    /// Prefix of the index aliases, as the indexer's and the analytics pipeline's:
    /// searches read `<prefix>-anime`, `trendingAnime` and `subscriptionCounts` read
    /// `<prefix>-anime-stats`.
    #[arg(long, env = "INDEX_PREFIX", default_value = anineplus_schemas::indices::DEFAULT_PREFIX)]
    pub index_prefix: String,
    /// Prefix of the log pipeline's daily indices, read by the admin `logs` query:
    /// `<prefix>-<service>-YYYY.MM.DD`.
    #[arg(long, env = "LOG_INDEX_PREFIX", default_value = anineplus_schemas::indices::DEFAULT_LOG_PREFIX)]
    pub log_index_prefix: String,
    /// Longest search request, in milliseconds.
    #[arg(long, env = "SEARCH_TIMEOUT_MS", default_value_t = 3000)]
    pub search_timeout_ms: u64,
    /// With the `index` backend: answer from PostgreSQL when the engine is unreachable or
    /// failing (off by default: see `docs/api.md`).
    #[arg(
        long,
        env = "SEARCH_FALLBACK_POSTGRES",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub search_fallback_postgres: bool,
}

/// Every problem found in a configuration, listed at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// A configuration from defaults and the environment only (no command-line arguments).
    pub fn from_env() -> Self {
        Config::parse_from(["anineplus-api"])
    }

    /// Fills the dev defaults and checks every field, listing every problem.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let dev = self.env == Environment::Dev;
        match &self.jwt_secret {
            None if dev => self.jwt_secret = Some(DEV_JWT_SECRET.to_owned()),
            None => problems.push(
                "JWT_SECRET is required: API_ENV is prod (the default when unset); set \
                 JWT_SECRET to a secret of at least 32 bytes, or API_ENV=dev on a development \
                 machine"
                    .to_owned(),
            ),
            Some(s) if !dev && s == DEV_JWT_SECRET => problems.push(
                "JWT_SECRET must not be the public dev secret outside API_ENV=dev: anyone \
                 could sign tokens with it"
                    .to_owned(),
            ),
            Some(s) if !dev && s.len() < 32 => {
                problems.push("JWT_SECRET must be at least 32 bytes outside API_ENV=dev".to_owned())
            }
            Some(_) => {}
        }
        self.admin_emails = self
            .admin_emails
            .iter()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        if self.admin_emails.is_empty() && dev {
            self.admin_emails.push(DEV_ADMIN_EMAIL.to_owned());
        }
        self.cors_origins.retain(|o| !o.trim().is_empty());
        for (name, value) in [
            ("API_MAX_BODY_BYTES", self.max_body_bytes),
            ("API_MAX_DEPTH", self.max_depth),
            ("API_MAX_COMPLEXITY", self.max_complexity),
            ("API_MAX_OPERATIONS", self.max_operations),
            ("API_MAX_PAGE_SIZE", self.max_page_size),
            ("API_MAX_ENTITIES", self.max_entities),
            ("API_RESOLVER_CONCURRENCY", self.resolver_concurrency),
            ("API_REQUEST_TIMEOUT_MS", self.request_timeout_ms as usize),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if self.rate_limit_window_secs == 0 {
            problems.push("RATE_LIMIT_WINDOW_SECS must be positive".to_owned());
        }
        if self.outbox_batch <= 0 {
            problems.push("OUTBOX_BATCH must be positive".to_owned());
        }
        if self.outbox_prune_secs == 0 {
            problems.push("OUTBOX_PRUNE_SECS must be positive".to_owned());
        }
        if self.search_timeout_ms == 0 {
            problems.push("SEARCH_TIMEOUT_MS must be positive".to_owned());
        }
        if self.index_prefix.trim().is_empty() {
            problems.push(
                "INDEX_PREFIX must not be empty: searchAnime (SEARCH_BACKEND=index) reads \
                 <prefix>-anime, trendingAnime and subscriptionCounts read <prefix>-anime-stats"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.jwt_jwks_url
            && let Err(reason) = crate::auth::jwks::check_url(url)
        {
            problems.push(format!("JWT_JWKS_URL {url:?} {reason}"));
        }
        if self.jwt_ttl_secs == 0 {
            problems.push("JWT_TTL_SECS must be positive".to_owned());
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Whether this is a development process.
    pub fn is_dev(&self) -> bool {
        self.env == Environment::Dev
    }

    /// The configured JWT secret (set by [`Config::validate`]).
    pub fn jwt_secret(&self) -> &str {
        self.jwt_secret.as_deref().unwrap_or_default()
    }

    /// The Kafka topic name of `topic`, with the configured prefix.
    pub fn topic_name(&self, topic: anineplus_schemas::Topic) -> String {
        format!("{}{}", self.kafka_topic_prefix, topic.name())
    }

    /// The relay's fallback poll interval.
    pub fn outbox_poll(&self) -> Duration {
        Duration::from_millis(self.outbox_poll_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["anineplus-api"];
        all.extend_from_slice(args);
        Config::parse_from(all)
    }

    #[test]
    fn dev_gets_a_secret_and_an_admin() {
        let config = parse(&["--env", "dev"]).validate().unwrap();
        assert_eq!(config.jwt_secret(), DEV_JWT_SECRET);
        assert_eq!(config.admin_emails, vec![DEV_ADMIN_EMAIL.to_owned()]);
        assert_eq!(config.search_backend, SearchBackendKind::Index);
        assert_eq!(config.index_prefix, "anineplus");
        assert!(!config.search_fallback_postgres);
        let config = parse(&["--search-backend", "postgres"]);
        assert_eq!(config.search_backend, SearchBackendKind::Postgres);
    }

    #[test]
    fn prod_requires_a_secret_and_has_no_default_admin() {
        let err = parse(&["--env", "prod"]).validate().unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is required"), "{err}");
        let err = parse(&["--env", "production", "--jwt-secret", DEV_JWT_SECRET])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("public dev secret"), "{err}");
        let config = parse(&["--env", "prod", "--jwt-secret", &"x".repeat(40)])
            .validate()
            .unwrap();
        assert!(config.admin_emails.is_empty());
    }

    #[test]
    fn a_jwks_url_must_be_https_except_on_loopback() {
        let with = |url: &str| parse(&["--env", "dev", "--jwt-jwks-url", url]).validate();
        for refused in [
            "http://idp.example.com/.well-known/jwks.json",
            "http://10.0.0.7/jwks",
            "http://localhost.example.com/jwks",
            "ftp://idp.example.com/jwks",
            "not a url",
        ] {
            let err = with(refused).expect_err(refused);
            assert!(err.to_string().contains("JWT_JWKS_URL"), "{err}");
        }
        for accepted in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
        ] {
            with(accepted).expect(accepted);
        }
    }

    #[test]
    fn production_is_the_default() {
        use clap::CommandFactory;
        let command = Config::command();
        let env = command
            .get_arguments()
            .find(|a| a.get_id() == "env")
            .unwrap();
        assert_eq!(env.get_default_values(), ["prod"]);
    }

    #[test]
    fn every_problem_is_listed() {
        let err = parse(&["--env", "prod", "--max-depth", "0", "--outbox-batch", "0"])
            .validate()
            .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn the_index_prefix_is_needed_by_every_search_backend() {
        for backend in ["index", "postgres"] {
            let err = parse(&[
                "--env",
                "dev",
                "--search-backend",
                backend,
                "--index-prefix",
                " ",
            ])
            .validate()
            .unwrap_err();
            assert!(err.to_string().contains("anime-stats"), "{backend}: {err}");
        }
    }
}
