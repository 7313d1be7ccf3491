//! RS256 keys from a JWKS URL (the option next to HS256): fetched at start, refreshed
//! periodically, looked up by the token's `kid`.
//!
//! Only keys meant for RS256 signatures are kept: RSA keys with a `kid`, whose `use` (if
//! given) is `sig`, whose `alg` (if given) is `RS256` and whose `key_ops` (if given)
//! include `verify`. An encryption key or a key published for another algorithm never
//! verifies a token, even when a token names its `kid`.
//!
//! The document decides which keys are trusted, so it must come over `https`
//! ([`check_url`]); plain `http` is accepted only on loopback, where no network sits
//! between the API and the server (a local sidecar, the tests' own JWKS server).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
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

/// Whether `key` is an RSA key meant for RS256 signatures (absent `use`, `alg` and
/// `key_ops` do not restrict it).
fn verifies_rs256(key: &Jwk) -> bool {
    let common = &key.common;
    matches!(key.algorithm, AlgorithmParameters::RSA(_))
        && common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == PublicKeyUse::Signature)
        && common
            .key_algorithm
            .is_none_or(|a| a == KeyAlgorithm::RS256)
        && common
            .key_operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&KeyOperations::Verify))
}

/// Refuses a JWKS URL that is not `https`, except `http` on a loopback host (`localhost`,
/// `127.0.0.0/8`, `::1`): over plain HTTP anyone on the path could publish their own keys.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("must be https (plain http only on a loopback address)".to_owned()),
        other => Err(format!("must be https, not {other}")),
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

    /// Replaces the keys with the RS256 signature keys (with a `kid`) of the JWKS document
    /// `json`; returns how many there are.
    pub fn load(&self, json: &str) -> Result<usize> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("JWKS at {} is not a key set: {e}", self.url)))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter(|k| verifies_rs256(k))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_speaks_https() {
        // Nothing listens on port 1: an https fetch gets as far as connecting (a client
        // without TLS refuses the scheme before that).
        let jwks = Jwks::new("https://127.0.0.1:1/jwks.json");
        let err = jwks
            .http
            .get(&jwks.url)
            .send()
            .await
            .expect_err("nothing listens");
        assert!(err.is_connect(), "{err:?}");
    }

    #[test]
    fn only_rs256_signature_keys_are_kept() {
        let published: serde_json::Value =
            serde_json::from_str(include_str!("testdata/rsa-test.jwks.json")).unwrap();
        let key = published["keys"][0].clone();
        let with = |kid: &str, field: &str, value: serde_json::Value| {
            let mut k = key.clone();
            k["kid"] = kid.into();
            k[field] = value;
            k
        };
        let mut bare = key.clone();
        bare["kid"] = "bare".into();
        bare.as_object_mut().unwrap().remove("use");
        bare.as_object_mut().unwrap().remove("alg");
        let set = serde_json::json!({"keys": [
            with("sig", "use", "sig".into()),
            bare,
            with("enc", "use", "enc".into()),
            with("rs512", "alg", "RS512".into()),
            with("ops", "key_ops", serde_json::json!(["encrypt"])),
            with("verify", "key_ops", serde_json::json!(["verify"])),
        ]});
        let jwks = Jwks::new("http://127.0.0.1/jwks.json");
        assert_eq!(jwks.load(&set.to_string()).unwrap(), 3);
        for kid in ["sig", "bare", "verify"] {
            assert!(jwks.key(kid).is_some(), "{kid}");
        }
        for kid in ["enc", "rs512", "ops"] {
            assert!(jwks.key(kid).is_none(), "{kid}");
        }
    }
}
