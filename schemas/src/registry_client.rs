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
    /// The base URL without credentials (it appears in errors and logs).
    base: String,
    credentials: Option<Credentials>,
    http: reqwest::Client,
}

/// HTTP basic credentials, as Confluent's `basic.auth.user.info` (`user:password`).
#[derive(Clone)]
struct Credentials {
    user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:***", self.user)
    }
}

impl RegistryClient {
    /// A client of the registry at `base` (e.g. `http://127.0.0.1:8081`). Credentials go in
    /// the URL's userinfo, percent-encoded (`http://user:password@host:8081`, as Confluent's
    /// `basic.auth.credentials.source=URL`), and are sent as HTTP basic authentication.
    pub fn new(base: &str) -> Self {
        let (base, credentials) = split_credentials(base.trim_end_matches('/'));
        RegistryClient {
            base,
            credentials,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .expect("reqwest client"),
        }
    }

    /// The registry's base URL, without credentials.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The registry's base URL with its credentials (to hand to another client).
    pub fn url_with_credentials(&self) -> String {
        match &self.credentials {
            None => self.base.clone(),
            Some(c) => match self.base.split_once("://") {
                Some((scheme, rest)) => format!(
                    "{scheme}://{}:{}@{rest}",
                    percent_encode(&c.user),
                    percent_encode(&c.password)
                ),
                None => self.base.clone(),
            },
        }
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

    /// `POST /subjects/{subject}`: the id of `schema` when `subject` already has it
    /// registered (a read: a client allowed only to read subjects may ask), `None` when the
    /// subject or the schema under it is unknown.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        #[derive(Deserialize)]
        struct Body {
            id: u32,
        }
        let request = self
            .http
            .post(format!("{}/subjects/{subject}", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string());
        match self
            .send::<Body>(request, &format!("subject {subject}"))
            .await
        {
            Ok(body) => Ok(Some(body.id)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
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

    /// `GET /subjects`: every subject, sorted.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let request = self.http.get(format!("{}/subjects", self.base));
        let mut subjects: Vec<String> = self.send(request, "subjects").await?;
        subjects.sort();
        Ok(subjects)
    }

    /// `GET /subjects/{subject}/versions`: the subject's versions, oldest first.
    pub async fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        let request = self.http.get(format!(
            "{}/subjects/{}/versions",
            self.base,
            percent_encode(subject)
        ));
        self.send(request, &format!("subject {subject}")).await
    }

    /// `GET /subjects/{subject}/versions/{version}`: the schema's id and text.
    pub async fn version(
        &self,
        subject: &str,
        version: i32,
    ) -> Result<(u32, String), RegistryError> {
        #[derive(Deserialize)]
        struct Body {
            id: u32,
            schema: String,
        }
        let request = self.http.get(format!(
            "{}/subjects/{}/versions/{version}",
            self.base,
            percent_encode(subject)
        ));
        let body: Body = self
            .send(request, &format!("subject {subject} version {version}"))
            .await?;
        Ok((body.id, body.schema))
    }

    /// `GET /config/{subject}?defaultToGlobal=true`: the subject's effective compatibility
    /// level (its own, else the global one).
    pub async fn compatibility_level(&self, subject: &str) -> Result<String, RegistryError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            compatibility_level: String,
        }
        let request = self.http.get(format!(
            "{}/config/{}?defaultToGlobal=true",
            self.base,
            percent_encode(subject)
        ));
        let body: Body = self.send(request, &format!("subject {subject}")).await?;
        Ok(body.compatibility_level)
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
        let request = match &self.credentials {
            Some(c) => request.basic_auth(&c.user, Some(&c.password)),
            None => request,
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

/// Splits `scheme://user:password@host...` into the URL without userinfo and the decoded
/// credentials.
fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), None);
    };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    (
        format!("{scheme}://{host}"),
        Some(Credentials {
            user: percent_decode(user),
            password: percent_decode(password),
        }),
    )
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Everything but RFC 3986's unreserved characters is escaped.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, USERINFO).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_userinfo_and_stay_out_of_the_url() {
        let client = RegistryClient::new("http://api:p%40ss%3Aword@127.0.0.1:8081/");
        assert_eq!(client.url(), "http://127.0.0.1:8081");
        let c = client.credentials.as_ref().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("api", "p@ss:word"));
        assert!(!format!("{client:?}").contains("p@ss"));
        assert_eq!(
            client.url_with_credentials(),
            "http://api:p%40ss%3Aword@127.0.0.1:8081"
        );
        let open = RegistryClient::new("http://127.0.0.1:8081");
        assert!(open.credentials.is_none());
        assert_eq!(open.url_with_credentials(), "http://127.0.0.1:8081");
    }
}
