//! Index templates and the alias layout, put when a pipeline starts.
//!
//! Each logical index is an alias `<name>` pointing at a concrete index `<name>-v<N>`, so a
//! reindex can build `<name>-v<N+1>` and swap the alias without search downtime. The index
//! template `<name>` (pattern `<name>-*`) carries the settings and mappings, so every
//! generation gets them; `number_of_replicas: 0` keeps single-node clusters green (ES 8 has
//! no cluster-wide default for it).

use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::{Value, json};

use crate::search::{self, CallError};

/// One logical index: its alias and mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// The alias searches and writes use, e.g. `anineplus-anime`.
    pub alias: String,
    /// The `mappings` object.
    pub mappings: Value,
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
        json!({
            "index_patterns": [format!("{}-*", self.alias)],
            "template": {
                "settings": { "number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s" },
                "mappings": self.mappings,
            },
        })
    }

    /// Puts the template, then creates the first index with the alias unless the alias
    /// exists; when it exists, puts the mappings on it, so fields added since it was
    /// created are mapped (a change the engine refuses, e.g. a field's type, is a permanent
    /// error naming the field: reindex for those). Idempotent and safe to race with
    /// another instance.
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
            self.call(
                client,
                Method::Put,
                &format!("/{}/_mapping", self.alias),
                Some(&self.mappings),
            )
            .await?;
            return Ok(());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_matches_every_generation_with_no_replicas() {
        let spec = IndexSpec {
            alias: "p-anime".into(),
            mappings: json!({"properties": {}}),
        };
        let t = spec.template();
        assert_eq!(t["index_patterns"][0], json!("p-anime-*"));
        assert_eq!(t["template"]["settings"]["number_of_replicas"], json!(0));
        assert_eq!(spec.first_index(), "p-anime-v1");
    }
}
