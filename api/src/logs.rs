//! The admin-only `logs` query's store: the log pipeline's daily indices
//! (`<LOG_INDEX_PREFIX>-*`), searched with the query `anineplus-logs trace` uses
//! (`anineplus_connectors::log_search`).

use anineplus_connectors::log_search::{self, LogHit, LogQuery, SearchError};
use elasticsearch::Elasticsearch;

use crate::{Error, Result};

/// The log indices of one engine and prefix.
#[derive(Debug, Clone)]
pub struct LogStore {
    client: Elasticsearch,
    prefix: String,
}

impl LogStore {
    /// The indices `<prefix>-*` of the engine `client` talks to (the API's
    /// [`engine_client`](crate::search::engine_client)).
    pub fn new(client: Elasticsearch, prefix: &str) -> Self {
        LogStore {
            client,
            prefix: prefix.to_owned(),
        }
    }

    /// The records `query` selects, in time order.
    pub async fn find(&self, query: &LogQuery) -> Result<Vec<LogHit>> {
        log_search::find(&self.client, &self.prefix, query)
            .await
            .map_err(|e| match e {
                SearchError::Query(e) => Error::BadInput(e.to_string()),
                other => Error::Search(other.to_string()),
            })
    }
}
