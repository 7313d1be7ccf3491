//! The API as the loader sees it: `POST /graphql` with a bearer token. Signing in as an
//! admin, reading which anime exist, and creating many anime per HTTP request: a batch of
//! documents, each a mutation of aliased `createAnime` fields (the API counts one HTTP
//! request against its rate limit, whatever it holds).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::bangumi::NewAnime;
use crate::{Error, Result};

/// An anime's identity for the loader: title and release year.
pub type Key = (String, Option<i32>);

/// A signed-in client of one API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
}

/// What became of each anime of one request, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Stored.
    Yes,
    /// Refused, with the API's message.
    Refused(String),
    /// Not run: an earlier field of its document failed (mutations run one after
    /// another and stop there). Worth sending again.
    NotRun,
}

impl Api {
    /// A client of the API at `url` (`http://127.0.0.1:3000`), not signed in yet.
    pub fn new(url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Api(format!("HTTP client: {e}")))?;
        Ok(Api {
            http,
            endpoint: format!("{}/graphql", url.trim_end_matches('/')),
            token: None,
        })
    }

    /// Signs in as `email`: `login`, or `signUp` when the account does not exist yet (the
    /// API makes the emails of `ADMIN_EMAILS` admins when they sign up). Fails unless the
    /// account is an ADMIN.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Result<()> {
        let login = self
            .post(&json!({
                "query": "mutation($i: LoginInput!) { login(input: $i) { token } }",
                "variables": {"i": {"email": email, "password": password}},
            }))
            .await?;
        let token = match login["data"]["login"]["token"].as_str() {
            Some(token) => token.to_owned(),
            None => {
                let signed = self
                    .post(&json!({
                        "query": "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
                        "variables": {"i": {"email": email, "name": "Catalogue", "password": password}},
                    }))
                    .await?;
                signed["data"]["signUp"]["token"]
                    .as_str()
                    .ok_or_else(|| {
                        Error::SignIn(format!(
                            "neither login ({}) nor signUp ({}) worked for {email}",
                            first_error(&login),
                            first_error(&signed)
                        ))
                    })?
                    .to_owned()
            }
        };
        self.token = Some(token);
        let me = self.post(&json!({"query": "{ me { role } }"})).await?;
        match me["data"]["me"]["role"].as_str() {
            Some("ADMIN") => Ok(()),
            role => Err(Error::SignIn(format!(
                "{email} is {}, not an ADMIN: only admins edit the catalogue (the API's \
                 ADMIN_EMAILS, dev default admin@anineplus.local)",
                role.unwrap_or("unknown")
            ))),
        }
    }

    /// How many live anime have each (title, release year), read 100 at a time.
    pub async fn existing(&self) -> Result<HashMap<Key, usize>> {
        let query = "query($after: String) { animes(first: 100, after: $after) { \
                     edges { node { title releaseYear } } pageInfo { hasNextPage endCursor } } }";
        let mut keys = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let body = self
                .post(&json!({"query": query, "variables": {"after": after}}))
                .await?;
            let page = &body["data"]["animes"];
            if page.is_null() {
                return Err(Error::Api(format!("animes: {}", first_error(&body))));
            }
            for edge in page["edges"].as_array().into_iter().flatten() {
                let node = &edge["node"];
                if let Some(title) = node["title"].as_str() {
                    let year = node["releaseYear"].as_i64().map(|y| y as i32);
                    *keys.entry((title.to_owned(), year)).or_insert(0) += 1;
                }
            }
            if page["pageInfo"]["hasNextPage"] != json!(true) {
                return Ok(keys);
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }

    /// Creates `documents` (each a list of anime: one mutation with an aliased field per
    /// anime) in one HTTP request; says what became of every anime, documents in order.
    pub async fn create(&self, documents: &[Vec<NewAnime>]) -> Result<Vec<Vec<Created>>> {
        let batch: Vec<Value> = documents.iter().map(|d| create_document(d)).collect();
        let body = self.post(&Value::Array(batch)).await?;
        let answers = match body {
            Value::Array(answers) if answers.len() == documents.len() => answers,
            // A request refused as a whole (limits) answers one object.
            other => return Err(Error::Api(format!("createAnime: {}", first_error(&other)))),
        };
        Ok(documents
            .iter()
            .zip(&answers)
            .map(|(d, answer)| outcomes(d.len(), answer))
            .collect())
    }

    /// Posts `body`; waits out the rate limit (429, `retry-after`) and retries transport
    /// failures and 5xx a few times before giving up.
    async fn post(&self, body: &Value) -> Result<Value> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut request = self.http.post(&self.endpoint).json(body);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let wait = match request.send().await {
                Ok(response) if response.status().as_u16() == 429 => {
                    let secs = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    // The rate limit is expected, not a failure: it never uses up attempts.
                    attempt -= 1;
                    Duration::from_secs(secs.max(1))
                }
                // A gateway or an API not ready: nothing ran.
                Ok(response) if matches!(response.status().as_u16(), 502..=504) && attempt < 4 => {
                    Duration::from_millis(500 * u64::from(attempt))
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response
                        .text()
                        .await
                        .map_err(|e| Error::Api(format!("reading an answer: {e}")))?;
                    return serde_json::from_str(&text).map_err(|_| {
                        Error::Api(format!(
                            "HTTP {status}: {}",
                            text.chars().take(300).collect::<String>()
                        ))
                    });
                }
                // Only a connection never made is safe to send again: a request that was
                // sent may have created anime.
                Err(e) if attempt < 4 && e.is_connect() => {
                    Duration::from_millis(500 * u64::from(attempt))
                }
                Err(e) => return Err(Error::Api(format!("{}: {e}", self.endpoint))),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One mutation creating `anime`: `a<i>: createAnime(input: $a<i>) { id }`.
fn create_document(anime: &[NewAnime]) -> Value {
    let params: Vec<String> = (0..anime.len())
        .map(|i| format!("$a{i}: CreateAnimeInput!"))
        .collect();
    let fields: Vec<String> = (0..anime.len())
        .map(|i| format!("a{i}: createAnime(input: $a{i}) {{ id }}"))
        .collect();
    let variables: serde_json::Map<String, Value> = anime
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                format!("a{i}"),
                serde_json::to_value(a).expect("serialisable"),
            )
        })
        .collect();
    json!({
        "query": format!("mutation Seed({}) {{ {} }}", params.join(", "), fields.join(" ")),
        "variables": variables,
    })
}

/// What became of each of `count` fields of one answer. A field with an id was stored; one
/// named by an error was refused; mutation fields run in order and a failed non-null one
/// ends the document (its `data` becomes null), so fields before the first refused one were
/// stored and those after it did not run.
fn outcomes(count: usize, answer: &Value) -> Vec<Created> {
    let errors: Vec<(usize, String)> = answer["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let alias = e["path"][0].as_str()?;
            let index = alias.strip_prefix('a')?.parse().ok()?;
            Some((index, e["message"].as_str().unwrap_or("refused").to_owned()))
        })
        .collect();
    let first_refused = errors.iter().map(|(i, _)| *i).min();
    let whole = (errors.is_empty() && answer.get("errors").is_some()).then(|| first_error(answer));
    (0..count)
        .map(|i| {
            if answer["data"][format!("a{i}")]["id"].is_string() {
                return Created::Yes;
            }
            if let Some(message) = &whole {
                return Created::Refused(message.clone());
            }
            if let Some((_, message)) = errors.iter().find(|(e, _)| *e == i) {
                return Created::Refused(message.clone());
            }
            match first_refused {
                Some(first) if i < first => Created::Yes,
                _ => Created::NotRun,
            }
        })
        .collect()
}

/// The first error's message and code, for reports.
fn first_error(body: &Value) -> String {
    let error = &body["errors"][0];
    match (
        error["message"].as_str(),
        error["extensions"]["code"].as_str(),
    ) {
        (Some(message), Some(code)) => format!("{code}: {message}"),
        (Some(message), None) => message.to_owned(),
        _ => body.to_string().chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bangumi::Status;

    fn anime(title: &str) -> NewAnime {
        NewAnime {
            title: title.into(),
            alternative_titles: vec![format!("{title} (en)")],
            status: Status::Finished,
            release_year: Some(2001),
        }
    }

    #[test]
    fn a_document_aliases_one_create_per_anime() {
        let doc = create_document(&[anime("A"), anime("B")]);
        assert_eq!(
            doc["query"],
            "mutation Seed($a0: CreateAnimeInput!, $a1: CreateAnimeInput!) { \
             a0: createAnime(input: $a0) { id } a1: createAnime(input: $a1) { id } }"
        );
        assert_eq!(doc["variables"]["a1"]["title"], "B");
        assert_eq!(
            doc["variables"]["a1"]["alternativeTitles"],
            json!(["B (en)"])
        );
    }

    #[test]
    fn outcomes_of_a_document_with_a_refused_field() {
        let ok = json!({"data": {"a0": {"id": "x"}, "a1": {"id": "y"}}});
        assert_eq!(outcomes(2, &ok), [Created::Yes, Created::Yes]);
        // What the API answers when the second of three fails: data null, one error.
        let failed = json!({"data": null, "errors": [{"message": "title: at most 200 characters",
            "path": ["a1"], "extensions": {"code": "BAD_USER_INPUT"}}]});
        assert_eq!(
            outcomes(3, &failed),
            [
                Created::Yes,
                Created::Refused("title: at most 200 characters".into()),
                Created::NotRun
            ]
        );
        let whole = json!({"errors": [{"message": "too many aliases", "extensions": {"code": "BAD_USER_INPUT"}}]});
        assert!(matches!(&outcomes(1, &whole)[0], Created::Refused(m) if m.contains("aliases")));
    }
}
