//! The registry's configuration: command-line flags, each overridable by an environment
//! variable, with defaults that run against the local stack (`make up`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::auth::Access;
use crate::compat::Compatibility;
use crate::error::Error;
use crate::limits::Limits;

/// The local stack's registry database (created by `make up`).
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://anineplus:anineplus@127.0.0.1:5432/anineplus_registry";

/// Schema registry speaking Confluent Schema Registry's REST API (AVRO), storing schemas in
/// PostgreSQL. Several instances may share one database.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "anineplus-registry",
    version,
    after_help = "Serves Confluent Schema Registry's REST API for AVRO: /subjects, \
                  /schemas/ids/{id}, /compatibility, /config and /mode. Logs JSON lines to \
                  stdout. Stops on SIGINT or SIGTERM after in-flight requests finish."
)]
pub struct Config {
    /// Address the REST API listens on (Confluent's port is 8081).
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// PostgreSQL database holding schemas, subjects and settings. Migrations are applied at
    /// start.
    #[arg(long, env = "REGISTRY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Most connections the registry opens to PostgreSQL (each request uses one).
    #[arg(long, env = "REGISTRY_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Seconds a request waits for a database connection before failing with 50001.
    #[arg(
        long,
        env = "REGISTRY_DATABASE_ACQUIRE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub database_acquire_timeout_secs: u64,

    /// Compatibility level of subjects when neither they nor the global config set one.
    #[arg(
        long,
        env = "REGISTRY_DEFAULT_COMPATIBILITY",
        default_value = "BACKWARD"
    )]
    pub default_compatibility: Compatibility,

    /// Longest schema text accepted, in bytes (longer: 42201). Request bodies may be about
    /// four times this (the schema escaped in JSON, and its references); larger ones get 413.
    #[arg(long, env = "REGISTRY_MAX_SCHEMA_BYTES", default_value_t = Limits::default().max_schema_bytes)]
    pub max_schema_bytes: usize,

    /// Deepest nesting of records, arrays and maps accepted in a schema (deeper: 42201).
    #[arg(long, env = "REGISTRY_MAX_SCHEMA_DEPTH", default_value_t = Limits::default().max_schema_depth)]
    pub max_schema_depth: usize,

    /// The users file: users, password hashes and per-subject permissions (see
    /// `docs/registry.md`). Required: the registry does not start with writes open to
    /// anonymous callers.
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,

    /// Seconds between checks of the users file's modification time: a changed file is
    /// read again (so is any file on SIGHUP). A file that does not parse keeps the users
    /// loaded before. 0: only on SIGHUP.
    #[arg(long, env = "REGISTRY_AUTH_RELOAD_SECS", default_value_t = 5)]
    pub auth_reload_secs: u64,

    /// Let callers without credentials read (schemas, subjects, settings); they can never
    /// write.
    #[arg(long, env = "REGISTRY_ANONYMOUS_READ", default_value_t = false, action = clap::ArgAction::Set)]
    pub anonymous_read: bool,

    /// Log filter (tracing's `EnvFilter` syntax, e.g. `info,anineplus_registry=debug`).
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

impl Config {
    /// The local defaults, pointed at `database_url` and listening on an ephemeral port
    /// (for tests and benchmarks).
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            database_max_connections: 16,
            database_acquire_timeout_secs: 10,
            default_compatibility: Compatibility::default(),
            auth_file: None,
            auth_reload_secs: 5,
            anonymous_read: false,
            max_schema_bytes: Limits::default().max_schema_bytes,
            max_schema_depth: Limits::default().max_schema_depth,
            log_filter: "info".to_owned(),
        }
    }

    /// The users and permissions of the users file; an error when none is configured.
    pub fn access(&self) -> Result<Access, Error> {
        match &self.auth_file {
            Some(path) => Access::load(path, self.anonymous_read),
            None => Err(Error::AccessConfig(
                "REGISTRY_AUTH_FILE (--auth-file) is not set: without users anyone who reaches the \
                 registry could rewrite or delete every schema; configure a users file"
                    .to_owned(),
            )),
        }
    }

    /// The bounds on submitted schemas.
    pub fn limits(&self) -> Limits {
        Limits {
            max_schema_bytes: self.max_schema_bytes,
            max_schema_depth: self.max_schema_depth,
        }
    }

    /// How long a request waits for a database connection.
    pub fn database_acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.database_acquire_timeout_secs)
    }

    /// The database URL without its password, for logs.
    pub fn redacted_database_url(&self) -> String {
        match self.database_url.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
                Some((credentials, host)) => {
                    let user = credentials.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:***@{host}")
                }
                None => self.database_url.clone(),
            },
            None => self.database_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_locally() {
        let config = Config::try_parse_from(["anineplus-registry"]).unwrap();
        // The environment may override these; when it does not, the defaults hold.
        if std::env::var_os("REGISTRY_LISTEN").is_none() {
            assert_eq!(config.listen.to_string(), "127.0.0.1:8081");
        }
        if std::env::var_os("REGISTRY_DEFAULT_COMPATIBILITY").is_none() {
            assert_eq!(config.default_compatibility, Compatibility::Backward);
        }
    }

    #[test]
    fn flags_override_and_bad_values_are_explained() {
        let config = Config::try_parse_from([
            "anineplus-registry",
            "--listen",
            "0.0.0.0:9000",
            "--default-compatibility",
            "full_transitive",
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.default_compatibility, Compatibility::FullTransitive);
        let err = Config::try_parse_from(["anineplus-registry", "--default-compatibility", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Invalid compatibility level 'x'"), "{err}");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        let config = Config::for_database("postgres://anineplus:secret@127.0.0.1:5432/db");
        assert_eq!(
            config.redacted_database_url(),
            "postgres://anineplus:***@127.0.0.1:5432/db"
        );
    }
}
