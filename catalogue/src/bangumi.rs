//! The bangumi-data catalogue (`dist/data.json` of the npm package `bangumi-data`) and its
//! mapping onto the API's `CreateAnimeInput`. Pure: no I/O beyond parsing bytes.
//!
//! The mapping, field by field:
//! - `title`: the item's `title` (the original, mostly Japanese title), trimmed;
//! - `alternativeTitles`: every title of `titleTranslate`, languages in the order
//!   [`LANGUAGE_ORDER`] (then any other, alphabetically), trimmed and deduplicated, the
//!   title itself left out; one longer than the API takes is left out too;
//! - `releaseYear`: the year of `begin` in Japan time (bangumi-data writes JST dates as UTC:
//!   `2019-12-31T15:00:00Z` is a New Year's Day premiere);
//! - `status`: from `begin` and `end` against the time of the run ([`status`]);
//! - `genres`: none. bangumi-data's `type` (tv, web, movie, ova) is a format, not a genre;
//!   stored as a genre it would mix `movie` with `fantasy` in the genre filter;
//! - `synopsis`: none (bangumi-data has none).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// The catalogue file: only what the mapping reads (`siteMeta` and each item's `sites`
/// are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    /// Every anime.
    pub items: Vec<Item>,
}

/// One anime of the catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Original title.
    pub title: String,
    /// Translated titles by language (`en`, `zh-Hans`, `zh-Hant`, `ja`).
    #[serde(default)]
    pub title_translate: BTreeMap<String, Vec<String>>,
    /// `tv`, `web`, `movie` or `ova`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// First broadcast, release or sale (ISO 8601, UTC).
    #[serde(default)]
    pub begin: String,
    /// Last broadcast or sale; empty while unknown (meaningless for movies).
    #[serde(default)]
    pub end: String,
}

/// The languages of `titleTranslate` first in `alternativeTitles`, in this order.
pub const LANGUAGE_ORDER: [&str; 4] = ["en", "zh-Hans", "zh-Hant", "ja"];

/// Longest title and alternative title the API takes (characters).
pub const MAX_TITLE: usize = 200;
/// Most alternative titles the API takes.
pub const MAX_ALTERNATIVE_TITLES: usize = 20;

/// Japan time, in which bangumi-data's dates are days.
const JST: i32 = 9 * 3600;

/// The API's `CreateAnimeInput`, as sent (`genres` and `synopsis` are left to their
/// defaults: empty and null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAnime {
    /// Title.
    pub title: String,
    /// Translations of the title.
    pub alternative_titles: Vec<String>,
    /// `AIRING`, `FINISHED` or `UPCOMING` (the API's `AnimeStatus`).
    pub status: Status,
    /// Year of first release, in Japan time.
    pub release_year: Option<i32>,
}

impl NewAnime {
    /// What makes an anime "already there": its title and release year (titles alone are
    /// not unique: remakes keep them).
    pub fn key(&self) -> (String, Option<i32>) {
        (self.title.clone(), self.release_year)
    }
}

/// The API's `AnimeStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Begun, not ended.
    Airing,
    /// Ended (a movie once released).
    Finished,
    /// Not begun yet.
    Upcoming,
}

/// Why an item is not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Its title is empty or longer than the API takes.
    #[error("title {0:?} is empty or longer than {MAX_TITLE} characters")]
    Title(String),
}

/// Parses the catalogue file.
pub fn parse(bytes: &[u8]) -> serde_json::Result<Catalogue> {
    serde_json::from_slice(bytes)
}

/// An item as the API's input, with `now` deciding its status.
pub fn map(item: &Item, now: DateTime<Utc>) -> Result<NewAnime, Skip> {
    let title = item.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(Skip::Title(item.title.clone()));
    }
    let begin = date(&item.begin);
    let end = date(&item.end);
    Ok(NewAnime {
        title: title.to_owned(),
        alternative_titles: alternative_titles(title, &item.title_translate),
        status: status(&item.kind, begin, end, now),
        release_year: begin.map(|b| b.with_timezone(&japan()).year()),
    })
}

/// The translations of `title`: by language in [`LANGUAGE_ORDER`], then the others by
/// name; trimmed, deduplicated, never `title` itself, none longer than [`MAX_TITLE`], at
/// most [`MAX_ALTERNATIVE_TITLES`].
pub fn alternative_titles(
    title: &str,
    translations: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let known = LANGUAGE_ORDER.iter().filter_map(|l| translations.get(*l));
    let others = translations
        .iter()
        .filter(|(l, _)| !LANGUAGE_ORDER.contains(&l.as_str()))
        .map(|(_, titles)| titles);
    let mut out: Vec<String> = Vec::new();
    for t in known.chain(others).flatten() {
        let t = t.trim();
        if t.is_empty() || t == title || t.chars().count() > MAX_TITLE {
            continue;
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    out.truncate(MAX_ALTERNATIVE_TITLES);
    out
}

/// The status at `now`: upcoming before `begin` (or without one); then finished once
/// `end` has passed, and a movie as soon as it is out (its `end` means nothing); airing
/// otherwise, including a series without an `end` (still running, or an OVA whose last
/// sale date is not set).
pub fn status(
    kind: &str,
    begin: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Status {
    match (begin, end) {
        (None, _) => Status::Upcoming,
        (Some(b), _) if b > now => Status::Upcoming,
        _ if kind == "movie" => Status::Finished,
        (_, Some(e)) if e <= now => Status::Finished,
        _ => Status::Airing,
    }
}

fn date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn japan() -> FixedOffset {
    FixedOffset::east_opt(JST).expect("a valid offset")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        date(text).unwrap()
    }

    /// Two items as bangumi-data 0.3.208 has them (`sites` left out).
    const SAMPLE: &str = r#"{"siteMeta": {}, "items": [
      {"title":"葬送のフリーレン","titleTranslate":{"en":["Frieren: Beyond Journey's End"],
       "zh-Hans":["葬送的芙莉莲"],"zh-Hant":["葬送的芙莉蓮"]},"type":"tv","lang":"ja",
       "officialSite":"https://frieren-anime.jp/","begin":"2023-09-29T14:00:00.000Z",
       "broadcast":"R/2023-09-29T14:00:00.000Z/P7D","end":"2024-03-22T14:00:00.000Z",
       "comment":"","sites":[{"site":"bangumi","id":"400602"}]},
      {"title":"名探偵コナン","titleTranslate":{"zh-Hans":["名侦探柯南"],"en":["Detective Conan"]},
       "type":"tv","lang":"ja","officialSite":"","begin":"1996-01-08T10:30:00.000Z","end":"",
       "sites":[]}
    ]}"#;

    #[test]
    fn items_map_to_create_inputs() {
        let catalogue = parse(SAMPLE.as_bytes()).unwrap();
        let now = at("2026-12-01T00:00:00Z");
        let frieren = map(&catalogue.items[0], now).unwrap();
        assert_eq!(
            frieren,
            NewAnime {
                title: "葬送のフリーレン".into(),
                alternative_titles: vec![
                    "Frieren: Beyond Journey's End".into(),
                    "葬送的芙莉莲".into(),
                    "葬送的芙莉蓮".into()
                ],
                status: Status::Finished,
                release_year: Some(2023),
            }
        );
        let conan = map(&catalogue.items[1], now).unwrap();
        assert_eq!(conan.status, Status::Airing, "no end: still running");
        assert_eq!(conan.alternative_titles, ["Detective Conan", "名侦探柯南"]);
        let body = serde_json::to_value(&conan).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"title": "名探偵コナン", "alternativeTitles": ["Detective Conan", "名侦探柯南"],
                "status": "AIRING", "releaseYear": 1996})
        );
    }

    #[test]
    fn the_year_is_japans() {
        let item = Item {
            title: "Premiere".into(),
            title_translate: BTreeMap::new(),
            kind: "tv".into(),
            begin: "2019-12-31T15:00:00.000Z".into(),
            end: String::new(),
        };
        let anime = map(&item, at("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(anime.release_year, Some(2020));
    }

    #[test]
    fn statuses_follow_begin_and_end() {
        let now = at("2026-06-01T00:00:00Z");
        let (past, later) = (
            Some(at("2020-01-01T00:00:00Z")),
            Some(at("2027-01-01T00:00:00Z")),
        );
        assert_eq!(status("tv", later, None, now), Status::Upcoming);
        assert_eq!(status("tv", None, None, now), Status::Upcoming);
        assert_eq!(status("tv", past, later, now), Status::Airing);
        assert_eq!(status("tv", past, None, now), Status::Airing);
        assert_eq!(status("ova", past, None, now), Status::Airing);
        assert_eq!(status("tv", past, past, now), Status::Finished);
        assert_eq!(status("movie", past, None, now), Status::Finished);
        assert_eq!(status("movie", later, later, now), Status::Upcoming);
    }

    #[test]
    fn alternative_titles_are_ordered_deduplicated_and_bounded() {
        let mut t = BTreeMap::new();
        t.insert(
            "zh-Hant".to_owned(),
            vec!["同".to_owned(), " Same ".to_owned()],
        );
        t.insert("en".to_owned(), vec!["Same".to_owned(), "Title".to_owned()]);
        t.insert(
            "ko".to_owned(),
            vec!["같은".to_owned(), "x".repeat(MAX_TITLE + 1)],
        );
        t.insert("zh-Hans".to_owned(), vec!["同".to_owned()]);
        assert_eq!(alternative_titles("Title", &t), ["Same", "同", "같은"]);
        let many = BTreeMap::from([(
            "en".to_owned(),
            (0..30).map(|i| i.to_string()).collect::<Vec<_>>(),
        )]);
        assert_eq!(alternative_titles("t", &many).len(), MAX_ALTERNATIVE_TITLES);
    }

    #[test]
    fn unusable_titles_are_skipped() {
        let item = Item {
            title: " ".into(),
            title_translate: BTreeMap::new(),
            kind: "tv".into(),
            begin: String::new(),
            end: String::new(),
        };
        assert!(matches!(map(&item, Utc::now()), Err(Skip::Title(_))));
    }
}
