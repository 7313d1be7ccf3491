//! RS256 keys from a JWKS URL (the option next to HS256): fetched at start, refreshed
//! periodically, looked up by the token's `kid`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// The RSA keys of a JWKS document, by key id.
#[derive(Clone)]
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// Keys to be fetched from `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: Default::default(),
        }
    }

    /// Replaces the keys with the RSA keys (with a `kid`) of the JWKS document `json`;
    /// returns how many there are.
    pub fn load(&self, json: &str) -> Result<usize> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("JWKS at {} is not a key set: {e}", self.url)))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter(|k| matches!(k.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|k| {
                let kid = k.common.key_id.clone()?;
                DecodingKey::from_jwk(k).ok().map(|key| (kid, key))
            })
            .collect();
        let n = keys.len();
        *self.keys.write().expect("jwks lock poisoned") = keys;
        Ok(n)
    }

    /// Fetches the document again.
    pub async fn refresh(&self) -> Result<usize> {
        let text = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Error::Internal(format!("JWKS at {}: {e}", self.url)))?
            .text()
            .await
            .map_err(|e| Error::Internal(format!("JWKS at {}: {e}", self.url)))?;
        self.load(&text)
    }

    /// The key with id `kid`.
    pub fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .expect("jwks lock poisoned")
            .get(kid)
            .cloned()
    }

    /// Refreshes every `every` until `shutdown`; a failed refresh keeps the old keys.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys");
            }
        }
    }
}
