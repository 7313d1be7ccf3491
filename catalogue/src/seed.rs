//! One run of the loader: map the catalogue, leave out what the API already holds, create
//! the rest in packed requests a few at a time, and report.
//!
//! Idempotent through the API itself: before writing, the run reads the (title, release
//! year) of every live anime and creates only the others, so a second run creates nothing
//! and a run after a partial one completes it. No state file to lose or to go stale when
//! the database is reset. The catalogue has a few distinct anime sharing a title and a year
//! (a TV series and its movie): keys are counted, so the API holds as many of a key as the
//! catalogue has.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::Result;
use crate::bangumi::{self, Catalogue, NewAnime};
use crate::client::{Api, Created, Key};

/// How a run talks to the API.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API's base URL (`http://127.0.0.1:3000`).
    pub api_url: String,
    /// An ADMIN's email (signed up when the account does not exist).
    pub email: String,
    /// Its password.
    pub password: String,
    /// Only the first this many items of the catalogue.
    pub limit: Option<usize>,
    /// `createAnime` fields per document: at most the API's `API_MAX_ALIASES`.
    pub per_document: usize,
    /// Documents per HTTP request: at most the API's `API_MAX_OPERATIONS`.
    pub per_request: usize,
    /// Largest request body, in bytes: under the API's `API_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// A progress line every this many anime.
    pub progress_every: usize,
}

impl Settings {
    /// The defaults for the API at `api_url`: the API's default limits (15 aliases,
    /// 5 operations, 64 KiB bodies) with room to spare, 4 requests in flight.
    pub fn new(api_url: &str, email: &str, password: &str) -> Self {
        Settings {
            api_url: api_url.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            limit: None,
            per_document: 15,
            per_request: 5,
            max_body_bytes: 48 * 1024,
            concurrency: 4,
            progress_every: 500,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Items of the catalogue considered (after `limit`).
    pub items: usize,
    /// Anime created by this run.
    pub created: usize,
    /// Anime the API already held.
    pub present: usize,
    /// Items not loadable, with why.
    pub skipped: Vec<String>,
    /// Anime the API refused, with its message.
    pub refused: Vec<(String, String)>,
    /// HTTP requests of creates.
    pub requests: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Loads `catalogue` into the API of `settings`, statuses decided at `now`; `progress`
/// gets a line every `progress_every` anime.
pub async fn run(
    settings: &Settings,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
    progress: &mut dyn FnMut(&str),
) -> Result<Report> {
    let started = Instant::now();
    let items = &catalogue.items[..settings
        .limit
        .unwrap_or(usize::MAX)
        .min(catalogue.items.len())];
    let mut report = Report {
        items: items.len(),
        ..Report::default()
    };
    let mut wanted = Vec::new();
    for item in items {
        match bangumi::map(item, now) {
            Ok(anime) => wanted.push(anime),
            Err(skip) => report.skipped.push(skip.to_string()),
        }
    }
    let mut api = Api::new(&settings.api_url)?;
    api.sign_in(&settings.email, &settings.password).await?;
    let mut existing = api.existing().await?;
    let before = wanted.len();
    wanted.retain(|a| !take(&mut existing, &a.key()));
    report.present = before - wanted.len();
    let total = wanted.len();
    progress(&format!(
        "seed: {} items, {} already in the API, {total} to create",
        report.items, report.present
    ));

    let mut done = 0usize;
    let mut next_line = settings.progress_every.max(1);
    // Fields after a refused one in the same document did not run: sent again, once more
    // per round, until none is left (each round sends fewer).
    let mut pending = wanted;
    while !pending.is_empty() {
        let requests = pack(pending, settings);
        report.requests += requests.len();
        let mut again = Vec::new();
        let mut answers = futures::stream::iter(requests.into_iter().map(|documents| {
            let api = &api;
            async move {
                let outcome = api.create(&documents).await;
                (documents, outcome)
            }
        }))
        .buffer_unordered(settings.concurrency.max(1));
        while let Some((documents, outcome)) = answers.next().await {
            let outcome = outcome?;
            for (document, outcomes) in documents.into_iter().zip(outcome) {
                for (anime, created) in document.into_iter().zip(outcomes) {
                    match created {
                        Created::Yes => {
                            report.created += 1;
                            done += 1;
                        }
                        Created::Refused(message) => {
                            report.refused.push((anime.title, message));
                            done += 1;
                        }
                        Created::NotRun => again.push(anime),
                    }
                }
            }
            while done >= next_line {
                progress(&format!("seed: {done}/{total} anime"));
                next_line += settings.progress_every.max(1);
            }
        }
        pending = again;
    }
    if !done.is_multiple_of(settings.progress_every.max(1)) {
        progress(&format!("seed: {done}/{total} anime"));
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Whether `counts` still holds one of `key`, using it up.
fn take(counts: &mut HashMap<Key, usize>, key: &Key) -> bool {
    match counts.get_mut(key) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// `anime` packed into requests of at most `per_request` documents of at most
/// `per_document` anime, each request's variables under `max_body_bytes`.
pub fn pack(anime: Vec<NewAnime>, settings: &Settings) -> Vec<Vec<Vec<NewAnime>>> {
    // The query text of one field and its variable's declaration, over-estimated.
    const PER_FIELD: usize = 96;
    let per_document = settings.per_document.max(1);
    let per_request = settings.per_request.max(1);
    let mut requests: Vec<Vec<Vec<NewAnime>>> = Vec::new();
    let mut request: Vec<Vec<NewAnime>> = Vec::new();
    let mut document: Vec<NewAnime> = Vec::new();
    let mut bytes = 0usize;
    for a in anime {
        let size = serde_json::to_string(&a).map_or(0, |s| s.len()) + PER_FIELD;
        if !document.is_empty() && bytes + size > settings.max_body_bytes {
            request.push(std::mem::take(&mut document));
            requests.push(std::mem::take(&mut request));
            bytes = 0;
        }
        document.push(a);
        bytes += size;
        if document.len() == per_document {
            request.push(std::mem::take(&mut document));
            if request.len() == per_request {
                requests.push(std::mem::take(&mut request));
                bytes = 0;
            }
        }
    }
    if !document.is_empty() {
        request.push(document);
    }
    if !request.is_empty() {
        requests.push(request);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bangumi::Status;

    fn anime(n: usize, alternative: usize) -> NewAnime {
        NewAnime {
            title: format!("Anime {n}"),
            alternative_titles: (0..alternative).map(|i| format!("{n} alias {i}")).collect(),
            status: Status::Finished,
            release_year: Some(2000),
        }
    }

    #[test]
    fn requests_respect_the_apis_limits() {
        let settings = Settings::new("http://x", "a", "b");
        let requests = pack((0..200).map(|n| anime(n, 2)).collect(), &settings);
        assert_eq!(requests.len(), 3, "75 per request");
        assert_eq!(requests[0].len(), 5);
        assert!(requests[0].iter().all(|d| d.len() == 15));
        assert_eq!(requests[2].iter().map(Vec::len).sum::<usize>(), 50);
        let order: Vec<String> = requests
            .iter()
            .flatten()
            .flatten()
            .map(|a| a.title.clone())
            .collect();
        assert_eq!(order.len(), 200);
        assert_eq!(order[199], "Anime 199", "in order, none lost");
    }

    #[test]
    fn keys_are_counted() {
        let key: Key = ("Ghost".into(), Some(1968));
        let mut counts = HashMap::from([(key.clone(), 1)]);
        assert!(take(&mut counts, &key), "the first is there");
        assert!(!take(&mut counts, &key), "the second (its movie) is not");
        assert!(!take(&mut counts, &("Other".into(), None)));
    }

    #[test]
    fn large_anime_make_smaller_requests() {
        let settings = Settings {
            max_body_bytes: 4096,
            ..Settings::new("http://x", "a", "b")
        };
        let requests = pack((0..40).map(|n| anime(n, 20)).collect(), &settings);
        for request in &requests {
            let bytes: usize = request
                .iter()
                .flatten()
                .map(|a| serde_json::to_string(a).unwrap().len() + 96)
                .sum();
            assert!(bytes <= 4096, "{bytes}");
        }
        assert_eq!(requests.iter().flatten().flatten().count(), 40);
    }
}
