//! The Elasticsearch-compatible search client.
//!
//! The `elasticsearch` crate sends plain `application/json` and performs no product check,
//! so the same client talks to OpenSearch (the local stack) and Elasticsearch 8 (the
//! docker-compose stack). Only APIs common to both are used: index, bulk with external
//! versioning, search, refresh, aliases, templates.

use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};

use crate::{Error, Result};

/// Default URL of the local stack's search engine.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9200";

/// Builds a client for the single node at `url`, with a per-request `timeout`.
pub fn client(url: &str, timeout: Duration) -> Result<Elasticsearch> {
    let parsed = url::Url::parse(url).map_err(|source| Error::SearchUrl {
        url: url.to_owned(),
        source,
    })?;
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(parsed))
        .timeout(timeout)
        .disable_proxy()
        .build()?;
    Ok(Elasticsearch::new(transport))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_an_invalid_url_naming_it() {
        let err = client("not a url", Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("not a url"), "{err}");
    }
}
