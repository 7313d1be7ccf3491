//! Anime search: a [`SearchBackend`] answers an [`AnimeSearch`] (text, filters, sort, page)
//! with [`SearchResults`] (the page, each hit's highlights, facet counts), and
//! autocompletes titles ([`SearchBackend::suggest`]).
//!
//! Two implementations, chosen at start-up by `SEARCH_BACKEND`:
//! - [`ElasticsearchSearch`] (`index`, the default, [`engine`]): relevance search in the
//!   alias `<INDEX_PREFIX>-anime` that the search indexer keeps in step with the `anime`
//!   topic (typos, prefixes, highlights, facets: see `docs/search.md`); the page's rows
//!   are then read from PostgreSQL by id, in hit order.
//! - [`PostgresSearch`] (`postgres`, [`postgres`]): `ILIKE` on title and synopsis with the
//!   same filters and sorts; no indexer needed and read-your-writes, but a scan per
//!   search, no typo tolerance, no highlights and no facets.

use std::collections::HashMap;

use uuid::Uuid;

use crate::Result;
use crate::domain::{Anime, AnimeStatus, Page};

pub mod engine;
pub mod postgres;

pub use engine::{ElasticsearchSearch, MAX_RESULT_WINDOW, engine_client};
pub use postgres::PostgresSearch;

/// A boxed future: keeps the trait object safe without a macro.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Which anime a search keeps, whatever the text matches. Within a field, any of the
/// values; across fields, all of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    /// Any of these genres (lowercase, as stored).
    pub genres: Vec<String>,
    /// Any of these statuses.
    pub status: Vec<AnimeStatus>,
    /// Released in or after this year.
    pub release_year_from: Option<i32>,
    /// Released in or before this year.
    pub release_year_to: Option<i32>,
}

/// The order of a search's hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, async_graphql::Enum)]
#[graphql(name = "AnimeSearchSort")]
pub enum SearchSort {
    /// Best match first (ties: oldest id first).
    #[default]
    Relevance,
    /// Most recently added first.
    Newest,
    /// Latest release year first, anime without one last (ties: best match first).
    ReleaseYear,
}

/// One search: text (empty: every live anime), filters, order and page.
#[derive(Debug, Clone, Copy)]
pub struct AnimeSearch<'a> {
    /// The words typed (trimmed, at most 200 characters).
    pub query: &'a str,
    /// Which anime it keeps.
    pub filter: &'a SearchFilter,
    /// Their order.
    pub sort: SearchSort,
    /// The first hit of the page.
    pub offset: i64,
    /// The page's size.
    pub limit: i64,
}

/// A part of a hit's field that matched, with the matched words in `<em>…</em>`; the rest
/// of the text is HTML-escaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Highlight {
    /// `title`, `alternativeTitles` or `synopsis`.
    pub field: String,
    /// The fragment.
    pub snippet: String,
}

/// A value of a facet and how many hits have it.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetCount {
    /// The value (a genre, a status).
    pub value: String,
    /// The hits with it.
    pub count: i64,
}

/// A range of release years and how many hits fall in it.
#[derive(Debug, Clone, PartialEq)]
pub struct YearRangeCount {
    /// The first year (none: open).
    pub from: Option<i32>,
    /// The last year, included (none: open).
    pub to: Option<i32>,
    /// The hits released in it.
    pub count: i64,
}

/// The release-year ranges of the facet: before 1980, each decade, 2020 and after.
pub const YEAR_RANGES: [(Option<i32>, Option<i32>); 6] = [
    (None, Some(1979)),
    (Some(1980), Some(1989)),
    (Some(1990), Some(1999)),
    (Some(2000), Some(2009)),
    (Some(2010), Some(2019)),
    (Some(2020), None),
];

/// Counts per facet value. Each facet counts the hits of the query under every filter
/// except its own, so choosing a genre still shows how many hits the other genres have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// Genres, most hits first (at most 50).
    pub genres: Vec<FacetCount>,
    /// Statuses, most hits first.
    pub status: Vec<FacetCount>,
    /// Release years, in [`YEAR_RANGES`] order.
    pub release_years: Vec<YearRangeCount>,
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// The page of live anime, in order, and how many match in all.
    pub page: Page<Anime>,
    /// What matched, per anime of the page.
    pub highlights: HashMap<Uuid, Vec<Highlight>>,
    /// Facet counts (empty from [`PostgresSearch`]).
    pub facets: Facets,
}

/// A title offered while the user types.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The anime.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// The title (or alternative title) that matched, the typed part in `<em>…</em>`.
    pub matched: Highlight,
}

/// The kinds of entity `search` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
#[graphql(name = "SearchType")]
pub enum EntityType {
    /// Anime: titles, alternative titles, genres, synopsis.
    Anime,
    /// Episodes: titles.
    Episode,
    /// Comments: the text of visible, undeleted ones.
    Comment,
    /// Users: names only (never an email).
    User,
    /// Organizations: names.
    Organization,
}

impl EntityType {
    /// Every kind, in the order counts are listed.
    pub const ALL: [EntityType; 5] = [
        EntityType::Anime,
        EntityType::Episode,
        EntityType::Comment,
        EntityType::User,
        EntityType::Organization,
    ];

    /// The index of this kind.
    pub fn index(self) -> anineplus_schemas::indices::Index {
        use anineplus_schemas::indices::Index;
        match self {
            EntityType::Anime => Index::Anime,
            EntityType::Episode => Index::Episodes,
            EntityType::Comment => Index::Comments,
            EntityType::User => Index::Users,
            EntityType::Organization => Index::Organizations,
        }
    }
}

/// One search over several kinds of entity.
#[derive(Debug, Clone, Copy)]
pub struct EverythingSearch<'a> {
    /// The words typed (not empty).
    pub query: &'a str,
    /// The kinds searched (not empty).
    pub types: &'a [EntityType],
    /// The first hit of the page.
    pub offset: i64,
    /// The page's size.
    pub limit: i64,
}

/// A hit of [`EverythingSearch`]: its kind, id and highlights.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The kind.
    pub kind: EntityType,
    /// The entity's id.
    pub id: Uuid,
    /// What matched.
    pub highlights: Vec<Highlight>,
}

/// What an [`EverythingSearch`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoundPage {
    /// The page's hits, best first.
    pub hits: Vec<Found>,
    /// How many match in all.
    pub total: i64,
    /// How many match per kind (every kind searched, zeros included).
    pub counts: Vec<(EntityType, i64)>,
}

/// Answers anime searches.
pub trait SearchBackend: Send + Sync {
    /// What `search` finds.
    fn search_anime<'a>(&'a self, search: AnimeSearch<'a>) -> BoxFuture<'a, Result<SearchResults>>;

    /// At most `limit` titles starting with the words of `prefix` (the last one as typed
    /// so far), best first.
    fn suggest<'a>(&'a self, prefix: &'a str, limit: i64)
    -> BoxFuture<'a, Result<Vec<Suggestion>>>;

    /// The hits of `search` over every kind it names, best first.
    fn search_everything<'a>(
        &'a self,
        search: EverythingSearch<'a>,
    ) -> BoxFuture<'a, Result<FoundPage>>;
}
