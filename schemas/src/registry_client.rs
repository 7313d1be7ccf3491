//! A small client for the registry endpoints the codec needs (Confluent REST API).

use std::time::Duration;

use serde::Deserialize;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered 404 (unknown subject, version or schema).
    #[error("{what} not found (registry error {code}: {message})")]
    NotFound {
        /// What was asked for.
        what: String,
        /// Confluent error code (40401, 40402, 40403).
        code: u32,
        /// The registry's message.
        message: String,
    },
    /// The registry refused the request (409 incompatible, 422 invalid, ...).
    #[error("registry refused: error {code}: {message}")]
    Rejected {
        /// Confluent error code.
        code: u32,
        /// The registry's message.
        message: String,
    },
    /// The registry could not be reached, timed out or failed with a 5xx.
    #[error("registry at {url} unavailable: {reason}")]
    Unavailable {
        /// The registry's base URL.
        url: String,
        /// What happened.
        reason: String,
    },
}

impl RegistryError {
    /// Only an unreachable or failing registry is worth retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: u32,
    message: String,
}

/// Client of one registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
}

impl RegistryClient {
    /// A client of the registry at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: &str) -> Self {
        RegistryClient {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .expect("reqwest client"),
        }
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /schemas/ids/{id}`: the schema text.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        #[derive(Deserialize)]
        struct Body {
            schema: String,
        }
        let body: Body = self
            .send(
                self.http.get(format!("{}/schemas/ids/{id}", self.base)),
                &format!("schema id {id}"),
            )
            .await?;
        Ok(body.schema)
    }

    /// `POST /subjects/{subject}/versions`: registers `schema` (or finds it); returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        #[derive(Deserialize)]
        struct Body {
            id: u32,
        }
        let request = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string());
        let body: Body = self.send(request, &format!("subject {subject}")).await?;
        Ok(body.id)
    }

    /// `POST /compatibility/subjects/{subject}/versions/latest?verbose=true`: an empty list
    /// when `schema` is compatible, else the registry's reasons.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Body {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        let request = self
            .http
            .post(format!(
                "{}/compatibility/subjects/{subject}/versions/latest?verbose=true",
                self.base
            ))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string());
        let body: Body = self.send(request, &format!("subject {subject}")).await?;
        Ok(if body.is_compatible {
            Vec::new()
        } else if body.messages.is_empty() {
            vec!["incompatible".into()]
        } else {
            body.messages
        })
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, RegistryError> {
        let unavailable = |reason: String| RegistryError::Unavailable {
            url: self.base.clone(),
            reason,
        };
        let response = request
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| unavailable(format!("unexpected answer {text:?}: {e}")));
        }
        if status.is_server_error() {
            return Err(unavailable(format!("HTTP {status}: {text}")));
        }
        let ErrorBody {
            error_code,
            message,
        } = serde_json::from_str(&text).unwrap_or(ErrorBody {
            error_code: u32::from(status.as_u16()),
            message: text,
        });
        if status == reqwest::StatusCode::NOT_FOUND {
            Err(RegistryError::NotFound {
                what: what.to_owned(),
                code: error_code,
                message,
            })
        } else {
            Err(RegistryError::Rejected {
                code: error_code,
                message,
            })
        }
    }
}
