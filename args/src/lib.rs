//! Command-line argument groups shared by every binary, each flag with one environment
//! variable and one default, so that `KAFKA_BROKERS`, `ELASTICSEARCH_URL` and
//! `SCHEMA_REGISTRY_URL` mean the same everywhere. Binaries `#[command(flatten)]` the
//! groups they need and map them into their library's configuration: clap lives here and
//! in binaries, not in library types.
//!
//! - [`KafkaArgs`]: `--kafka-brokers` (also `--brokers`), `KAFKA_BROKERS`, default
//!   [`kafka::DEFAULT_BROKERS`](anineplus_connectors::kafka::DEFAULT_BROKERS);
//! - [`SearchArgs`]: `--search-url` (also `--elasticsearch-url`), `ELASTICSEARCH_URL`,
//!   default [`search::DEFAULT_URL`](anineplus_connectors::search::DEFAULT_URL);
//! - [`RegistryArgs`]: `--registry-url` (also `--schema-registry-url`, `--registry`),
//!   `SCHEMA_REGISTRY_URL`, default [`anineplus_schemas::DEFAULT_REGISTRY_URL`];
//! - [`LogShippingArgs`]: `--log-shipping true|false` (`LOG_SHIPPING`, default on) and
//!   `--log-shipping-timeout-ms` (`LOG_SHIPPING_TIMEOUT_MS`, default 30 s);
//! - [`RetryArgs`]: the `--retry-*` flags of the pipelines, into a
//!   [`RetryPolicy`](anineplus_streams::dead_letter::RetryPolicy).
//!
//! The flags are `global`, so a tool with subcommands takes them before or after its
//! subcommand.

use std::time::Duration;

use anineplus_connectors::{kafka, search};
use anineplus_streams::dead_letter::{RetryPolicy, parse_duration};
use clap::Args;

/// Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (comma-separated host:port).
    #[arg(
        long = "kafka-brokers",
        visible_alias = "brokers",
        env = "KAFKA_BROKERS",
        default_value = kafka::DEFAULT_BROKERS,
        value_name = "HOST:PORT,...",
        global = true
    )]
    pub brokers: String,
}

/// The search engine (Elasticsearch or OpenSearch).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SearchArgs {
    /// The search engine's URL (Elasticsearch or OpenSearch), or its nodes' URLs
    /// comma-separated: taken in turn, a node that refuses connections passed over.
    #[arg(
        long = "search-url",
        visible_alias = "elasticsearch-url",
        env = "ELASTICSEARCH_URL",
        default_value = search::DEFAULT_URL,
        value_name = "URL",
        global = true
    )]
    pub search_url: String,
}

/// The schema registry.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RegistryArgs {
    /// The schema registry's URL; credentials go in its userinfo
    /// (`http://user:password@host:8081`, percent-encoded).
    #[arg(
        long = "registry-url",
        visible_aliases = ["schema-registry-url", "registry"],
        env = "SCHEMA_REGISTRY_URL",
        default_value = anineplus_schemas::DEFAULT_REGISTRY_URL,
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub registry_url: String,
}

/// Whether a service ships its logs to the `logs` topic.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LogShippingArgs {
    /// Ship every log record to the `logs` topic (Avro through the registry) besides
    /// stdout; dropped, never awaited, when Kafka is away (`logs_dropped_total`).
    #[arg(
        long = "log-shipping",
        env = "LOG_SHIPPING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "true|false"
    )]
    pub log_shipping: bool,
    /// How long Kafka may take to acknowledge a shipped record before it counts as dropped.
    #[arg(
        long = "log-shipping-timeout-ms",
        env = "LOG_SHIPPING_TIMEOUT_MS",
        default_value_t = 30_000,
        value_name = "MS"
    )]
    pub log_shipping_timeout_ms: u64,
}

impl LogShippingArgs {
    /// The delivery timeout of shipped records.
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.log_shipping_timeout_ms.max(1))
    }
}

/// How a pipeline retries failures.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct RetryArgs {
    /// In-place attempts after the first failure of a record, before a retry topic.
    #[arg(
        long = "retry-in-place",
        env = "RETRY_IN_PLACE",
        default_value_t = 3,
        value_name = "N"
    )]
    pub in_place_attempts: usize,
    /// First in-place backoff delay (doubles, with jitter, up to --retry-max-delay).
    #[arg(long = "retry-min-delay", env = "RETRY_MIN_DELAY", default_value = "100ms", value_parser = parse_duration, value_name = "DURATION")]
    pub in_place_min_delay: Duration,
    /// Largest in-place backoff delay.
    #[arg(long = "retry-max-delay", env = "RETRY_MAX_DELAY", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub in_place_max_delay: Duration,
    /// Delays of the retry topics, in order: one topic `<pipeline>.retry.<n>` per delay, then
    /// the dead-letter topic. Comma-separated, e.g. `5s,1m,10m`.
    #[arg(long = "retry-delays", env = "RETRY_DELAYS", default_value = "5s,1m,10m", value_delimiter = ',', value_parser = parse_duration, value_name = "DURATIONS")]
    pub delays: Vec<Duration>,
}

impl RetryArgs {
    /// The policy these flags say.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            in_place_attempts: self.in_place_attempts,
            in_place_min_delay: self.in_place_min_delay,
            in_place_max_delay: self.in_place_max_delay,
            delays: self.delays.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        search: SearchArgs,
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        retry: RetryArgs,
    }

    #[test]
    fn defaults_are_the_local_stack_and_the_default_policy() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.kafka.brokers, kafka::DEFAULT_BROKERS);
        assert_eq!(cli.search.search_url, search::DEFAULT_URL);
        assert_eq!(
            cli.registry.registry_url,
            anineplus_schemas::DEFAULT_REGISTRY_URL
        );
        assert_eq!(cli.retry.policy(), RetryPolicy::default());
    }

    #[test]
    fn every_old_flag_name_still_works() {
        for (flags, brokers, search, registry) in [
            (
                [
                    "--kafka-brokers",
                    "k:1",
                    "--search-url",
                    "http://s",
                    "--registry-url",
                    "http://r",
                ],
                "k:1",
                "http://s",
                "http://r",
            ),
            (
                [
                    "--brokers",
                    "k:2",
                    "--elasticsearch-url",
                    "http://s2",
                    "--schema-registry-url",
                    "http://r2",
                ],
                "k:2",
                "http://s2",
                "http://r2",
            ),
            (
                [
                    "--brokers",
                    "k:3",
                    "--search-url",
                    "http://s3",
                    "--registry",
                    "http://r3",
                ],
                "k:3",
                "http://s3",
                "http://r3",
            ),
        ] {
            let cli = Cli::try_parse_from(std::iter::once("x").chain(flags)).unwrap();
            assert_eq!(
                (
                    cli.kafka.brokers.as_str(),
                    cli.search.search_url.as_str(),
                    cli.registry.registry_url.as_str()
                ),
                (brokers, search, registry)
            );
        }
        let cli = Cli::try_parse_from(["x", "--retry-delays", "1s,30s"]).unwrap();
        assert_eq!(
            cli.retry.policy().delays,
            vec![Duration::from_secs(1), Duration::from_secs(30)]
        );
    }

    #[test]
    fn each_group_reads_its_one_environment_variable() {
        let cmd = <Cli as clap::CommandFactory>::command();
        let env_of = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env_of("brokers").as_deref(), Some("KAFKA_BROKERS"));
        assert_eq!(env_of("search_url").as_deref(), Some("ELASTICSEARCH_URL"));
        assert_eq!(
            env_of("registry_url").as_deref(),
            Some("SCHEMA_REGISTRY_URL")
        );
    }
}
