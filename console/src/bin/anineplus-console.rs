//! `anineplus-console`: the operators' console (see the crate docs and `--help`).

use std::net::SocketAddr;
use std::time::Duration;

use anineplus_args::{KafkaArgs, LogShippingArgs, RegistryArgs};
use anineplus_console::config::DEFAULT_PIPELINES;
use anineplus_console::{ConsoleConfig, PipelineSpec};
use anineplus_streams::dead_letter::parse_duration;
use anineplus_telemetry::ship::ShipConfig;
use clap::Parser;

/// The operators' web console: pipelines and their lag, dead letters grouped by cause,
/// redrive jobs, purge of what is resolved, an audit log. Operators (role OPERATOR) and
/// admins sign in with a token of the API. Runs until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "anineplus-console", version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    logs: LogShippingArgs,
    #[command(flatten)]
    search: anineplus_args::SearchArgs,
    /// Prefix of the search indices the search sync page checks (`<prefix>-anime`, ...).
    #[arg(long, env = "INDEX_PREFIX", default_value = anineplus_schemas::indices::DEFAULT_PREFIX)]
    index_prefix: String,
    /// Where the pages are served.
    #[arg(long, env = "CONSOLE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PostgreSQL of the console's tables (dead-letter index, jobs, audit).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://anineplus:anineplus@127.0.0.1:5432/anineplus"
    )]
    database_url: String,
    /// Prefix of every topic (empty in production).
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// The pipelines watched, comma-separated, each `NAME=METRICS_URL;GROUP:TOPIC+TOPIC;…`
    /// (its dead letters are in `<prefix>NAME.dlq`).
    #[arg(long = "pipeline", env = "CONSOLE_PIPELINES", value_delimiter = ',', default_value = DEFAULT_PIPELINES, value_parser = PipelineSpec::parse)]
    pipelines: Vec<PipelineSpec>,
    /// Where the API listens (`host:port`): its `login` mutation signs operators in with
    /// their email and password.
    #[arg(long = "api", env = "API_LISTEN", default_value = "127.0.0.1:3000")]
    api_listen: String,
    /// `prod` (the default) or `dev` (the API's public dev JWT secret when none is set).
    #[arg(long, env = "API_ENV", default_value = "prod")]
    api_env: String,
    /// The API's HS256 JWT secret; with `API_ENV=dev` the API's dev secret by default.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// The API's token issuer.
    #[arg(long, env = "JWT_ISSUER", default_value = "anineplus")]
    jwt_issuer: String,
    /// The API's token audience.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "anineplus-api")]
    jwt_audience: String,
    /// Longest session (never beyond the token's expiry), e.g. `8h`.
    #[arg(long, env = "CONSOLE_SESSION_TTL", default_value = "8h", value_parser = parse_duration)]
    session_ttl: Duration,
    /// How often lag, health and rates are sampled.
    #[arg(long, env = "CONSOLE_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Mark the session cookie `Secure` (serve behind TLS).
    #[arg(long, env = "CONSOLE_SECURE_COOKIES", default_value_t = false)]
    secure_cookies: bool,
    /// Default rate cap of a redrive job, records per second.
    #[arg(long, env = "CONSOLE_REDRIVE_RATE", default_value_t = 100)]
    redrive_rate: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shipping = cli.logs.log_shipping.then(|| ShipConfig {
        delivery_timeout: cli.logs.delivery_timeout(),
        ..ShipConfig::new(
            "console",
            &cli.kafka.brokers,
            &cli.registry.registry_url,
            &cli.topic_prefix,
        )
    });
    let logging = anineplus_telemetry::init_service_logging("info,rdkafka=warn", shipping)?;
    let dev = cli.api_env == "dev";
    anyhow::ensure!(
        dev || cli.api_env == "prod",
        "API_ENV must be prod or dev, not {:?}",
        cli.api_env
    );
    let jwt_secret = match cli.jwt_secret {
        Some(s) if !dev && s == anineplus_api::config::DEV_JWT_SECRET => {
            anyhow::bail!("JWT_SECRET must not be the public dev secret outside API_ENV=dev")
        }
        Some(s) => s,
        None if dev => anineplus_api::config::DEV_JWT_SECRET.to_owned(),
        None => anyhow::bail!(
            "JWT_SECRET is required (the API's), or API_ENV=dev on a development machine"
        ),
    };
    let config = ConsoleConfig {
        listen: cli.listen,
        kafka_brokers: cli.kafka.brokers,
        schema_registry_url: cli.registry.registry_url,
        database_url: cli.database_url,
        topic_prefix: cli.topic_prefix,
        pipelines: cli.pipelines,
        api_url: format!("http://{}", cli.api_listen),
        jwt_secret,
        jwt_issuer: cli.jwt_issuer,
        jwt_audience: cli.jwt_audience,
        session_ttl: cli.session_ttl,
        poll_interval: cli.poll_interval,
        secure_cookies: cli.secure_cookies,
        default_rate: cli.redrive_rate,
        search_url: cli.search.search_url,
        index_prefix: cli.index_prefix,
    };
    let shutdown = anineplus_telemetry::shutdown_on_signal();
    let outcome = anineplus_console::run(config, shutdown).await;
    logging.finish().await;
    outcome?;
    Ok(())
}
