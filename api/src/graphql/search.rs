//! The GraphQL shapes of anime search: `searchAnime`'s filter input and its connection
//! (edges with highlights, facets), and `suggest`'s suggestions. The search itself is
//! [`crate::search`].

use async_graphql::{InputObject, SimpleObject};

use async_graphql::Union;

use super::page::{PageInfo, cursor};
use super::types::{AnimeNode, CommentNode, EpisodeNode, OrganizationNode, UserNode};
use crate::domain::{AnimeStatus, FoundEntities, FoundEntity};
use crate::search::{self, EntityType, SearchResults};

/// Which anime `searchAnime` keeps, whatever the text matches: any of the values within a
/// field, all of the fields given.
#[derive(Debug, Default, InputObject)]
pub struct AnimeSearchFilter {
    /// Any of these genres (case does not matter; at most 20).
    pub genres: Option<Vec<String>>,
    /// Any of these statuses.
    pub status: Option<Vec<AnimeStatus>>,
    /// Released in or after this year.
    pub release_year_from: Option<i32>,
    /// Released in or before this year.
    pub release_year_to: Option<i32>,
}

impl From<AnimeSearchFilter> for search::SearchFilter {
    fn from(f: AnimeSearchFilter) -> Self {
        Self {
            genres: f.genres.unwrap_or_default(),
            status: f.status.unwrap_or_default(),
            release_year_from: f.release_year_from,
            release_year_to: f.release_year_to,
        }
    }
}

/// A part of a hit that matched the query.
#[derive(Debug, Clone, SimpleObject)]
pub struct Highlight {
    /// `title`, `alternativeTitles` or `synopsis`.
    pub field: String,
    /// The matched part with the matched words in `<em>…</em>`; the rest is HTML-escaped,
    /// so the snippet can be shown as HTML as it is.
    pub snippet: String,
}

impl From<search::Highlight> for Highlight {
    fn from(h: search::Highlight) -> Self {
        Self {
            field: h.field,
            snippet: h.snippet,
        }
    }
}

/// A facet value and how many hits have it.
#[derive(Debug, Clone, SimpleObject)]
pub struct FacetCount {
    /// The value.
    pub value: String,
    /// The hits with it.
    pub count: i64,
}

/// A range of release years and how many hits fall in it.
#[derive(Debug, Clone, SimpleObject)]
pub struct YearRangeCount {
    /// The first year (none: open).
    pub from: Option<i32>,
    /// The last year, included (none: open).
    pub to: Option<i32>,
    /// The hits released in it.
    pub count: i64,
}

/// Counts of the hits per value. Each facet counts under every filter but its own, so a
/// chosen genre still shows how many hits the other genres would give. Empty when the
/// search is answered from PostgreSQL (`SEARCH_BACKEND=postgres`, or the fallback).
#[derive(Debug, Clone, SimpleObject)]
pub struct AnimeFacets {
    /// Genres, most hits first (at most 50).
    pub genres: Vec<FacetCount>,
    /// Statuses, most hits first.
    pub status: Vec<FacetCount>,
    /// Release years: before 1980, each decade, 2020 and after (zero counts included).
    pub release_years: Vec<YearRangeCount>,
}

/// A hit of `searchAnime`.
#[derive(Debug, Clone, SimpleObject)]
pub struct AnimeSearchEdge {
    /// Opaque position, for `after`.
    pub cursor: String,
    /// The anime (its current row).
    pub node: AnimeNode,
    /// What matched (empty for an empty query, or from PostgreSQL).
    pub highlights: Vec<Highlight>,
}

/// A page of `searchAnime`.
#[derive(Debug, Clone, SimpleObject)]
pub struct AnimeSearchConnection {
    /// The hits with their cursors and highlights.
    pub edges: Vec<AnimeSearchEdge>,
    /// Where this page sits.
    pub page_info: PageInfo,
    /// How many anime match in all (under the filters).
    pub total_count: i64,
    /// Counts per genre, status and release years.
    pub facets: AnimeFacets,
}

impl From<SearchResults> for AnimeSearchConnection {
    fn from(r: SearchResults) -> Self {
        let SearchResults {
            page,
            mut highlights,
            facets,
        } = r;
        let page_info = super::page::page_info(page.offset, page.items.len(), page.total);
        let edges = page
            .items
            .into_iter()
            .enumerate()
            .map(|(i, anime)| AnimeSearchEdge {
                cursor: cursor(page.offset + i as i64),
                highlights: highlights
                    .remove(&anime.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Highlight::from)
                    .collect(),
                node: AnimeNode(anime),
            })
            .collect();
        Self {
            edges,
            page_info,
            total_count: page.total,
            facets: AnimeFacets {
                genres: facets.genres.into_iter().map(count).collect(),
                status: facets.status.into_iter().map(count).collect(),
                release_years: facets
                    .release_years
                    .into_iter()
                    .map(|y| YearRangeCount {
                        from: y.from,
                        to: y.to,
                        count: y.count,
                    })
                    .collect(),
            },
        }
    }
}

fn count(c: search::FacetCount) -> FacetCount {
    FacetCount {
        value: c.value,
        count: c.count,
    }
}

/// A title offered as the user types.
#[derive(Debug, Clone, SimpleObject)]
pub struct AnimeSuggestion {
    /// The anime's id.
    pub id: async_graphql::ID,
    /// Its title.
    pub title: String,
    /// The title or alternative title that matched, the typed words in `<em>…</em>`.
    pub matched: Highlight,
}

impl From<search::Suggestion> for AnimeSuggestion {
    fn from(s: search::Suggestion) -> Self {
        Self {
            id: async_graphql::ID(s.id.to_string()),
            title: s.title,
            matched: s.matched.into(),
        }
    }
}

/// An entity found by `search`.
#[derive(Union)]
#[graphql(name = "SearchResult")]
pub enum SearchResultNode {
    /// An anime.
    Anime(AnimeNode),
    /// An episode.
    Episode(EpisodeNode),
    /// A visible comment.
    Comment(CommentNode),
    /// A user (its email only to itself and admins, as everywhere).
    User(UserNode),
    /// An organization.
    Organization(OrganizationNode),
}

/// A hit of `search`.
#[derive(SimpleObject)]
pub struct SearchEdge {
    /// Opaque position, for `after`.
    pub cursor: String,
    /// Which kind of entity the node is.
    #[graphql(name = "type")]
    pub kind: EntityType,
    /// The entity (its current row).
    pub node: SearchResultNode,
    /// What matched.
    pub highlights: Vec<Highlight>,
}

/// How many hits a kind of entity has.
#[derive(Debug, Clone, SimpleObject)]
pub struct SearchTypeCount {
    /// The kind.
    #[graphql(name = "type")]
    pub kind: EntityType,
    /// Its hits.
    pub count: i64,
}

/// A page of `search`.
#[derive(SimpleObject)]
pub struct SearchConnection {
    /// The hits, best first.
    pub edges: Vec<SearchEdge>,
    /// Where this page sits.
    pub page_info: PageInfo,
    /// How many entities match in all.
    pub total_count: i64,
    /// How many match per kind searched.
    pub counts: Vec<SearchTypeCount>,
}

impl From<FoundEntities> for SearchConnection {
    fn from(f: FoundEntities) -> Self {
        let page_info = super::page::page_info(f.offset, f.hits.len(), f.total);
        let edges = f
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, (found, highlights))| {
                let (kind, node) = match found {
                    FoundEntity::Anime(a) => (EntityType::Anime, SearchResultNode::Anime(a.into())),
                    FoundEntity::Episode(e) => {
                        (EntityType::Episode, SearchResultNode::Episode(e.into()))
                    }
                    FoundEntity::Comment(c) => {
                        (EntityType::Comment, SearchResultNode::Comment(c.into()))
                    }
                    FoundEntity::User(u) => {
                        (EntityType::User, SearchResultNode::User(UserNode::of(u)))
                    }
                    FoundEntity::Organization(o) => (
                        EntityType::Organization,
                        SearchResultNode::Organization(OrganizationNode(o)),
                    ),
                };
                SearchEdge {
                    cursor: cursor(f.offset + i as i64),
                    kind,
                    node,
                    highlights: highlights.into_iter().map(Highlight::from).collect(),
                }
            })
            .collect();
        Self {
            edges,
            page_info,
            total_count: f.total,
            counts: f
                .counts
                .into_iter()
                .map(|(kind, count)| SearchTypeCount { kind, count })
                .collect(),
        }
    }
}
