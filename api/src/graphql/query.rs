//! The query root.

use async_graphql::{Context, ErrorExtensions, ID, Object, Result, ResultExt};

use super::inputs::AnimeFilterInput;
use super::page::{AnimeConnection, CommentConnection, start_after};
use super::parts;
use super::search::{AnimeSearchConnection, AnimeSearchFilter, AnimeSuggestion, SearchConnection};
use super::types::{
    AnimeNode, EpisodeNode, LogEntry, LogLevel, OrganizationNode, PlanCountNode, TrendingAnimeNode,
    UserNode,
};
use crate::Error;
use crate::domain::{AnimeFilter, CommentTarget, TrendingWindow};
use crate::search::{EntityType, SearchSort};

/// How many anime `trendingAnime` answers when `first` is not given.
pub const TRENDING_DEFAULT: usize = 10;

/// How many titles `suggest` offers by default, and at most.
pub const SUGGEST_DEFAULT: usize = 5;
/// The most titles `suggest` offers.
pub const SUGGEST_MAX: i32 = 20;

/// Reads.
#[derive(Debug, Default)]
pub struct QueryRoot;

/// An id that is not a UUID names nothing: lookups answer null.
fn lookup(id: &ID) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(id).ok()
}

#[Object]
impl QueryRoot {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<UserNode> {
        let (domain, caller) = parts(ctx);
        let (id, _) = caller.viewer.require().extend()?;
        domain
            .user(id)
            .await
            .extend()?
            .map(UserNode::of)
            .ok_or(Error::Unauthenticated)
            .extend()
    }

    /// A user by id.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<UserNode>> {
        let (domain, _) = parts(ctx);
        let Some(id) = lookup(&id) else {
            return Ok(None);
        };
        Ok(domain.user(id).await.extend()?.map(UserNode::of))
    }

    /// An anime by id.
    async fn anime(&self, ctx: &Context<'_>, id: ID) -> Result<Option<AnimeNode>> {
        let (domain, _) = parts(ctx);
        let Some(id) = lookup(&id) else {
            return Ok(None);
        };
        Ok(domain.anime(id).await.extend()?.map(AnimeNode))
    }

    /// Anime, newest first, filtered and paginated.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn animes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AnimeFilterInput>,
    ) -> Result<AnimeConnection> {
        let (domain, _) = parts(ctx);
        let limit = domain.page_size(first).extend()?;
        let offset = start_after(after.as_deref()).extend()?;
        let filter = filter.unwrap_or_default();
        let filter = AnimeFilter {
            status: filter.status,
            genre: filter.genre,
            release_year: filter.release_year,
        };
        Ok(domain.animes(&filter, offset, limit).await.extend()?.into())
    }

    /// Anime matching a text query, best first by default: typos forgiven (one in words of
    /// 5 letters or more, two from 9), the words as typed so far matching the start of
    /// title words ("fri" finds "Frieren"), exact and phrase matches above typos, titles
    /// above synopses (`docs/search.md`). An empty query lists every anime. `filter`
    /// narrows the hits and `totalCount`; `facets` count the hits per genre, status and
    /// release years, each under the other filters; each edge's `highlights` show what
    /// matched. `sort`: `RELEVANCE` (default), `NEWEST` (most recently added), or
    /// `RELEASE_YEAR` (latest first).
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn search_anime(
        &self,
        ctx: &Context<'_>,
        query: String,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AnimeSearchFilter>,
        sort: Option<SearchSort>,
    ) -> Result<AnimeSearchConnection> {
        let (domain, _) = parts(ctx);
        let limit = domain.page_size(first).extend()?;
        let offset = start_after(after.as_deref()).extend()?;
        let filter = filter.unwrap_or_default().into();
        Ok(domain
            .search_anime(&query, &filter, sort.unwrap_or_default(), offset, limit)
            .await
            .extend()?
            .into())
    }

    /// Every kind of entity matching a text query (not empty), best first: anime (as in
    /// `searchAnime`), episodes (titles), visible comments (text), users (names only; an
    /// email is never searched) and organizations (names), with the same typo and prefix
    /// rules. `types` narrows the kinds (default all); `counts` gives the hits per kind.
    /// Needs the search index (`SEARCH_BACKEND=index`).
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        types: Option<Vec<EntityType>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SearchConnection> {
        let (domain, _) = parts(ctx);
        let limit = domain.page_size(first).extend()?;
        let offset = start_after(after.as_deref()).extend()?;
        Ok(domain
            .search_everything(&query, &types.unwrap_or_default(), offset, limit)
            .await
            .extend()?
            .into())
    }

    /// Titles for a search box as the user types: anime whose title (or alternative
    /// title) words start with the words of `prefix` (the last one as typed so far),
    /// words in order first, shorter titles first; at most `first` (default 5, clamped to
    /// 1 to 20). Read from the search index: a few moments behind the writes.
    #[graphql(complexity = "super::limits::clamped_size(first, SUGGEST_DEFAULT)")]
    async fn suggest(
        &self,
        ctx: &Context<'_>,
        prefix: String,
        #[graphql(default_with = "Some(SUGGEST_DEFAULT as i32)")] first: Option<i32>,
    ) -> Result<Vec<AnimeSuggestion>> {
        let (domain, _) = parts(ctx);
        let first = first
            .unwrap_or(SUGGEST_DEFAULT as i32)
            .clamp(1, SUGGEST_MAX) as i64;
        Ok(domain
            .suggest(&prefix, first)
            .await
            .extend()?
            .into_iter()
            .map(AnimeSuggestion::from)
            .collect())
    }

    /// The anime most commented on in `window` (default `CURRENT_HOUR`), from the
    /// analytics pipeline's one-hour comment windows (`<INDEX_PREFIX>-anime-stats`; hours
    /// are UTC, a window starts on a full hour): `CURRENT_HOUR` is the window containing
    /// now (its start is now floored to the hour; still filling), `LAST_HOUR` the complete
    /// window before it, `LAST_24_HOURS` the sum of the 24 windows ending with the
    /// current one. At 14:25 UTC they are the windows starting at 14:00, at 13:00, and at
    /// 15:00 the day before through 14:00 (comments created 14:00–14:25, 13:00–14:00 and
    /// 15:00 the day before–14:25). Most comments first, then by anime id; at most
    /// `first` (default 10, clamped to 1 to 100). Anime without comments in the window
    /// and deleted anime are left out; before the pipeline has written anything the
    /// answer is empty. Counts are visible, undeleted comments, as the pipeline counted
    /// them (a few seconds behind the writes).
    #[graphql(
        complexity = "super::limits::clamped_size(first, TRENDING_DEFAULT) * child_complexity"
    )]
    async fn trending_anime(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(TRENDING_DEFAULT as i32)")] first: Option<i32>,
        #[graphql(default_with = "Some(TrendingWindow::CurrentHour)")] window: Option<
            TrendingWindow,
        >,
    ) -> Result<Vec<TrendingAnimeNode>> {
        let (domain, _) = parts(ctx);
        let first = super::limits::clamped_size(first, TRENDING_DEFAULT);
        Ok(domain
            .trending_anime(window.unwrap_or_default(), first, chrono::Utc::now())
            .await
            .extend()?
            .into_iter()
            .map(TrendingAnimeNode::from)
            .collect())
    }

    /// Active subscriptions per plan, by plan (admins only), as the analytics pipeline
    /// counted them (`<INDEX_PREFIX>-anime-stats`): a plan it has not counted yet is
    /// absent, and before it has written anything the answer is empty.
    async fn subscription_counts(&self, ctx: &Context<'_>) -> Result<Vec<PlanCountNode>> {
        let (domain, caller) = parts(ctx);
        Ok(domain
            .subscription_counts(&caller.viewer)
            .await
            .extend()?
            .into_iter()
            .map(PlanCountNode::from)
            .collect())
    }

    /// Log records of every service, from the log pipeline's indices, in time order
    /// (admins only): one request's by `correlationId` (the request's `x-correlation-id`),
    /// or a service's, at `level` and above, logged at or after `since` (RFC 3339); at
    /// most `first` (default and most 100).
    #[graphql(complexity = "super::limits::list_cost(first, child_complexity)")]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        correlation_id: Option<String>,
        service: Option<String>,
        level: Option<LogLevel>,
        since: Option<String>,
        first: Option<i32>,
    ) -> Result<Vec<LogEntry>> {
        let (domain, caller) = parts(ctx);
        let since = since
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.timestamp_millis())
                    .map_err(|e| {
                        Error::BadInput(format!("since: not an RFC 3339 time ({e}): {s:?}"))
                    })
            })
            .transpose()
            .extend()?;
        let size = super::limits::clamped_size(first, super::limits::LIST_CAP);
        let query = anineplus_connectors::log_search::LogQuery {
            correlation_id,
            service,
            min_level: level.map(|l| l.as_str().to_owned()),
            since,
            after: None,
            size,
        };
        Ok(domain
            .logs(&caller.viewer, &query)
            .await
            .extend()?
            .into_iter()
            .map(LogEntry::from)
            .collect())
    }

    /// An episode by id.
    async fn episode(&self, ctx: &Context<'_>, id: ID) -> Result<Option<EpisodeNode>> {
        let (domain, _) = parts(ctx);
        let Some(id) = lookup(&id) else {
            return Ok(None);
        };
        Ok(domain.episode(id).await.extend()?.map(EpisodeNode))
    }

    /// The episodes of an anime, by number: at most `first` (default and most 100) after
    /// skipping `offset`.
    #[graphql(complexity = "super::limits::list_cost(first, child_complexity)")]
    async fn episodes(
        &self,
        ctx: &Context<'_>,
        anime_id: ID,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<EpisodeNode>> {
        let (domain, _) = parts(ctx);
        let Some(id) = lookup(&anime_id) else {
            return Ok(Vec::new());
        };
        let list = domain.episodes_of(id).await.extend()?;
        Ok(super::limits::slice(list, first, offset)
            .extend()?
            .into_iter()
            .map(EpisodeNode)
            .collect())
    }

    /// Comments on an anime (`animeId`) or on an episode (`episodeId`): exactly one of both.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        anime_id: Option<ID>,
        episode_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CommentConnection> {
        let target = match (anime_id, episode_id) {
            (Some(a), None) => {
                CommentTarget::Anime(crate::domain::validate::id("anime", &a).extend()?)
            }
            (None, Some(e)) => {
                CommentTarget::Episode(crate::domain::validate::id("episode", &e).extend()?)
            }
            _ => {
                return Err(Error::bad_input(
                    "comments: give exactly one of animeId and episodeId",
                )
                .extend());
            }
        };
        super::page::comment_page(ctx, target, first, after).await
    }

    /// An organization by id.
    async fn organization(&self, ctx: &Context<'_>, id: ID) -> Result<Option<OrganizationNode>> {
        let (domain, _) = parts(ctx);
        let Some(id) = lookup(&id) else {
            return Ok(None);
        };
        Ok(domain
            .organization(id)
            .await
            .extend()?
            .map(OrganizationNode))
    }

    /// Federation: a user by key.
    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<UserNode>> {
        self.user(ctx, id).await
    }

    /// Federation: an anime by key.
    #[graphql(entity)]
    async fn find_anime_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<AnimeNode>> {
        self.anime(ctx, id).await
    }

    /// Federation: an episode by key.
    #[graphql(entity)]
    async fn find_episode_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<EpisodeNode>> {
        self.episode(ctx, id).await
    }
}
