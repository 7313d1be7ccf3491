//! The console's typed configuration (filled from flags and environment variables by the
//! binary) and the pipeline specifications it watches.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{Error, Result};

/// One consumer group of a pipeline and the topics it reads (without the topic prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The consumer group.
    pub group: String,
    /// The topics whose committed offsets count its lag.
    pub topics: Vec<String>,
}

/// A pipeline the console watches: its name (its dead letters are in `<prefix><name>.dlq`),
/// the base URL of its `/metrics` and `/health`, and its consumer groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSpec {
    /// The pipeline's name, as in its dead letters' `pipeline` header.
    pub name: String,
    /// `http://host:port` of its `/metrics` and `/health`.
    pub metrics_url: String,
    /// Its consumer groups.
    pub groups: Vec<GroupSpec>,
}

impl PipelineSpec {
    /// Parses `NAME=METRICS_URL;GROUP:TOPIC+TOPIC;GROUP:TOPIC`, e.g.
    /// `log-index=http://127.0.0.1:9465;anineplus-log-index:logs`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let (name, rest) = text.split_once('=').ok_or_else(|| {
            format!("pipeline {text:?}: expected NAME=METRICS_URL;GROUP:TOPIC+TOPIC")
        })?;
        let mut parts = rest.split(';');
        let metrics_url = parts
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "pipeline {text:?}: the name must be letters, digits, - or _"
            ));
        }
        if !metrics_url.starts_with("http://") && !metrics_url.starts_with("https://") {
            return Err(format!(
                "pipeline {name}: metrics URL {metrics_url:?} is not http(s)://"
            ));
        }
        let groups = parts
            .map(|g| {
                let (group, topics) = g.split_once(':').ok_or_else(|| {
                    format!("pipeline {name}: group {g:?} is not GROUP:TOPIC+TOPIC")
                })?;
                let topics: Vec<String> = topics
                    .split('+')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                if group.is_empty() || topics.is_empty() {
                    return Err(format!(
                        "pipeline {name}: group {g:?} needs a name and topics"
                    ));
                }
                Ok(GroupSpec {
                    group: group.to_owned(),
                    topics,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(PipelineSpec {
            name: name.to_owned(),
            metrics_url,
            groups,
        })
    }
}

/// The pipelines of `make up`, as `CONSOLE_PIPELINES` lists them by default.
pub const DEFAULT_PIPELINES: &str = "indexer=http://127.0.0.1:9464;anineplus-indexer:anime+episode+user+organization+comment+subscription,\
log-index=http://127.0.0.1:9465;anineplus-log-index:logs,\
log-archive=http://127.0.0.1:9466;anineplus-log-archive:logs,\
log-alerts=http://127.0.0.1:9467;anineplus-log-alerts:logs,\
analytics-comments=http://127.0.0.1:9468;anineplus-analytics-comments:comment,\
analytics-subscriptions=http://127.0.0.1:9468;anineplus-analytics-subscriptions:subscription,\
analytics-index=http://127.0.0.1:9468;anineplus-analytics-index:anime-stats";

/// Everything the console needs to run.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Where the pages are served.
    pub listen: SocketAddr,
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// The schema registry (decodes the payloads of inspected dead letters).
    pub schema_registry_url: String,
    /// PostgreSQL: the console's tables (index, jobs, audit), migrated at start.
    pub database_url: String,
    /// Topic prefix of the deployment (empty in production).
    pub topic_prefix: String,
    /// The pipelines watched.
    pub pipelines: Vec<PipelineSpec>,
    /// `http://host:port` of the API, whose `login` mutation signs operators in.
    pub api_url: String,
    /// The API's JWT secret (HS256), issuer and audience: tokens are the API's.
    pub jwt_secret: String,
    /// Expected `iss`.
    pub jwt_issuer: String,
    /// Expected `aud`.
    pub jwt_audience: String,
    /// How long a session lasts at most (never beyond its token's expiry).
    pub session_ttl: Duration,
    /// How often lag, health and rates are sampled.
    pub poll_interval: Duration,
    /// Send the session cookie with `Secure` (behind TLS).
    pub secure_cookies: bool,
    /// Default rate cap of a redrive job (records per second).
    pub default_rate: u32,
    /// The search engine whose indices the search sync page checks against PostgreSQL
    /// (`database_url`: the API's tables).
    pub search_url: String,
    /// The indices' prefix (`<prefix>-anime`, ...).
    pub index_prefix: String,
}

impl ConsoleConfig {
    /// Every problem of the configuration at once, or `Ok`.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.jwt_secret.len() < 32 {
            problems.push("JWT_SECRET must be at least 32 bytes".to_owned());
        }
        if !self.api_url.starts_with("http://") && !self.api_url.starts_with("https://") {
            problems.push(format!(
                "the API's URL {:?} is not http(s)://",
                self.api_url
            ));
        }
        if self.pipelines.is_empty() {
            problems.push("CONSOLE_PIPELINES lists no pipeline".to_owned());
        }
        let mut names: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            problems.push("CONSOLE_PIPELINES names a pipeline twice".to_owned());
        }
        if self.default_rate == 0 {
            problems.push("CONSOLE_REDRIVE_RATE must be positive".to_owned());
        }
        if self.poll_interval.is_zero() {
            problems.push("CONSOLE_POLL_INTERVAL must be positive".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }

    /// The pipeline called `name`.
    pub fn pipeline(&self, name: &str) -> Option<&PipelineSpec> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// The dead-letter topic of `pipeline`.
    pub fn dlq_topic(&self, pipeline: &str) -> String {
        format!("{}{pipeline}.dlq", self.topic_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_specs_parse_and_bad_ones_say_why() {
        let all: Vec<PipelineSpec> = DEFAULT_PIPELINES
            .split(',')
            .map(|s| PipelineSpec::parse(s).unwrap())
            .collect();
        assert_eq!(all.len(), 7);
        assert_eq!(all[0].name, "indexer");
        assert_eq!(all[0].metrics_url, "http://127.0.0.1:9464");
        assert_eq!(all[0].groups[0].group, "anineplus-indexer");
        assert_eq!(all[0].groups[0].topics.len(), 6);
        assert!(
            PipelineSpec::parse("indexer")
                .unwrap_err()
                .contains("NAME=METRICS_URL")
        );
        assert!(
            PipelineSpec::parse("x=ftp://a")
                .unwrap_err()
                .contains("not http")
        );
        assert!(
            PipelineSpec::parse("x=http://a;g")
                .unwrap_err()
                .contains("GROUP:TOPIC")
        );
        assert!(
            PipelineSpec::parse("a b=http://a")
                .unwrap_err()
                .contains("letters")
        );
    }
}
