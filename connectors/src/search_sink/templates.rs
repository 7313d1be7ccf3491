//! Index templates and the alias layout, put when a pipeline starts.
//!
//! Each logical index is an alias `<name>` pointing at a concrete index `<name>-v<N>`, so a
//! reindex can build `<name>-v<N+1>` and swap the alias without search downtime. The index
//! template `<name>` (pattern `<name>-*`) carries the settings and mappings, so every
//! generation gets them; `auto_expand_replicas: 0-1` gives every shard one replica as soon
//! as a second node is there and none on a single node (which stays green; ES 8 has no
//! cluster-wide default for the replica count).
//!
//! Mappings carry a version (`_meta.version`). A change the engine cannot apply to a live
//! index (a new analyser, a field's type) raises it: [`IndexSpec::ensure`] then leaves the
//! older generation serving, with a warning, until a reindex builds the next generation
//! from the template (see `docs/search.md`, "Changing a mapping").

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::{Value, json};

use crate::search::{self, CallError};

/// The replicas of every index the project creates (`index.auto_expand_replicas`): none on
/// a single node, one per shard once the cluster has two nodes or more, so a node can go
/// without losing a shard and a single-node engine stays green.
pub const REPLICAS: &str = "0-1";

/// One logical index: its alias and mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// The alias searches and writes use, e.g. `anineplus-anime`.
    pub alias: String,
    /// The `mappings` object; `_meta.version` says which version of them it is.
    pub mappings: Value,
    /// The `analysis` settings (analysers, tokenisers, filters) the mappings name, if any.
    pub analysis: Option<Value>,
}

/// Why the indices could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("setting up index {alias}: {source}")]
pub struct SetupError {
    /// The alias.
    pub alias: String,
    /// The call that failed.
    #[source]
    pub source: CallError,
}

impl SetupError {
    /// Whether trying again may help (engine unreachable, busy or failing).
    pub fn is_retryable(&self) -> bool {
        self.source.class.is_retryable()
    }
}

impl IndexSpec {
    /// The first concrete index behind the alias.
    pub fn first_index(&self) -> String {
        format!("{}-v1", self.alias)
    }

    /// The body of the index template.
    pub fn template(&self) -> Value {
        let mut settings = json!({ "number_of_shards": 1, "auto_expand_replicas": REPLICAS, "refresh_interval": "1s" });
        if let Some(analysis) = &self.analysis {
            settings["analysis"] = analysis.clone();
        }
        json!({
            "index_patterns": [format!("{}-*", self.alias)],
            "template": { "settings": settings, "mappings": self.mappings },
        })
    }

    /// The version of these mappings (`_meta.version`, 0 without one).
    pub fn version(&self) -> i64 {
        mapping_version(&self.mappings)
    }

    /// Puts the template, then creates the first index with the alias unless the alias
    /// exists; when it exists, puts the mappings on it, so fields added since it was
    /// created are mapped. A change the engine refuses (a field's type, an analyser the
    /// live index lacks) is a permanent error naming the field, unless the live index's
    /// mappings are of an older version: then it keeps serving with them, a warning says
    /// to reindex, and this returns `Ok`. Idempotent and safe to race with another
    /// instance.
    pub async fn ensure(&self, client: &Elasticsearch) -> Result<(), SetupError> {
        let template = self.template();
        self.call(
            client,
            Method::Put,
            &format!("/_index_template/{}", self.alias),
            Some(&template),
        )
        .await?;
        let alias = self
            .call(
                client,
                Method::Head,
                &format!("/_alias/{}", self.alias),
                None,
            )
            .await;
        let exists = match alias {
            Ok(_) => true,
            Err(e) if e.source.is_not_found() => false,
            Err(e) => return Err(e),
        };
        if exists {
            let put = self
                .call(
                    client,
                    Method::Put,
                    &format!("/{}/_mapping", self.alias),
                    Some(&self.mappings),
                )
                .await;
            return match put {
                Ok(_) => Ok(()),
                Err(e) if !e.is_retryable() => match self.live_version(client).await? {
                    Some(live) if live < self.version() => {
                        tracing::warn!(
                            alias = %self.alias,
                            live,
                            wanted = self.version(),
                            refused = %e.source,
                            "the index's mappings are older than this build's and cannot be \
                             updated in place: searches use the old ones until a reindex \
                             (anineplus-sync reindex) builds the next generation"
                        );
                        Ok(())
                    }
                    _ => Err(e),
                },
                Err(e) => Err(e),
            };
        }
        let body = json!({ "aliases": { self.alias.clone(): { "is_write_index": true } } });
        match self
            .call(
                client,
                Method::Put,
                &format!("/{}", self.first_index()),
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.source
                    .reason
                    .contains("resource_already_exists_exception") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The lowest mapping version of the indices behind the alias.
    async fn live_version(&self, client: &Elasticsearch) -> Result<Option<i64>, SetupError> {
        let live = self
            .call(
                client,
                Method::Get,
                &format!("/{}/_mapping", self.alias),
                None,
            )
            .await?;
        Ok(live.as_object().and_then(|indices| {
            indices
                .values()
                .map(|i| mapping_version(&i["mappings"]))
                .min()
        }))
    }

    async fn call(
        &self,
        client: &Elasticsearch,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SetupError> {
        search::call_json(client, method, path, body)
            .await
            .map_err(|source| SetupError {
                alias: self.alias.clone(),
                source,
            })
    }
}

/// `_meta.version` of a `mappings` object, 0 without one.
fn mapping_version(mappings: &Value) -> i64 {
    mappings["_meta"]["version"].as_i64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_matches_every_generation_with_no_replicas() {
        let spec = IndexSpec {
            alias: "p-anime".into(),
            mappings: json!({"properties": {}}),
            analysis: None,
        };
        let t = spec.template();
        assert_eq!(t["index_patterns"][0], json!("p-anime-*"));
        assert_eq!(
            t["template"]["settings"]["auto_expand_replicas"],
            json!("0-1")
        );
        assert!(t["template"]["settings"]["analysis"].is_null());
        assert_eq!(spec.first_index(), "p-anime-v1");
        assert_eq!(spec.version(), 0);
    }

    #[test]
    fn analysis_goes_into_the_settings_and_the_version_is_read_from_meta() {
        let spec = IndexSpec {
            alias: "p-anime".into(),
            mappings: json!({"_meta": {"version": 3}, "properties": {}}),
            analysis: Some(json!({"analyzer": {"a": {"type": "standard"}}})),
        };
        assert_eq!(
            spec.template()["template"]["settings"]["analysis"]["analyzer"]["a"]["type"],
            json!("standard")
        );
        assert_eq!(spec.version(), 3);
    }
}
