//! Object types: thin wrappers of the domain rows. Every object reached by id checks what
//! the viewer may see of it, whatever root field led there.

use async_graphql::{Context, ErrorExtensions, ID, Object, Result, ResultExt};

use super::limits;
use super::page::CommentConnection;
use super::parts;
use crate::Error;
use crate::domain::{
    self, AnimeStatus, CommentStatus, CommentTarget, MemberRole, Plan, Role, SubscriptionStatus,
};

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A signed-in answer: the token and its user.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for `Authorization: Bearer <token>`.
    pub token: String,
    /// The user.
    pub user: UserNode,
}

/// A user; the flag is set when the answer is for the user themself even though the
/// request carried no token yet (`signUp`, `login`).
#[derive(Debug, Clone)]
pub struct UserNode(pub domain::User, pub bool);

impl UserNode {
    /// A user as seen by the request's viewer.
    pub fn of(user: domain::User) -> Self {
        Self(user, false)
    }
}

/// A user.
#[Object(name = "User")]
impl UserNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Email: seen by the user and admins only.
    async fn email(&self, ctx: &Context<'_>) -> Result<String> {
        let (_, caller) = parts(ctx);
        if self.1 || caller.viewer.is_self_or_admin(self.0.id) {
            Ok(self.0.email.clone())
        } else {
            Err(Error::Forbidden("only the user and admins see an email").extend())
        }
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Role.
    async fn role(&self) -> Role {
        self.0.role
    }
    /// Version of the row.
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Creation time (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }
    /// Plan subscriptions, newest first: the user and admins only. At most `first`
    /// (default and most 100) after skipping `offset`.
    #[graphql(complexity = "limits::list_cost(first, child_complexity)")]
    async fn subscriptions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<SubscriptionNode>> {
        let (domain, caller) = parts(ctx);
        let list = domain.subscriptions_of(caller, self.0.id).await.extend()?;
        Ok(limits::slice(list, first, offset)
            .extend()?
            .into_iter()
            .map(SubscriptionNode)
            .collect())
    }
}

/// An anime.
#[derive(Debug, Clone)]
pub struct AnimeNode(pub domain::Anime);

impl From<domain::Anime> for AnimeNode {
    fn from(a: domain::Anime) -> Self {
        Self(a)
    }
}

/// An anime.
#[Object(name = "Anime")]
impl AnimeNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Synopsis.
    async fn synopsis(&self) -> Option<&str> {
        self.0.synopsis.as_deref()
    }
    /// Genres, lowercase.
    async fn genres(&self) -> &[String] {
        &self.0.genres
    }
    /// Airing status.
    async fn status(&self) -> AnimeStatus {
        self.0.status
    }
    /// Year of first release.
    async fn release_year(&self) -> Option<i32> {
        self.0.release_year
    }
    /// Other titles (translations, romanisations); empty when it has none.
    async fn alternative_titles(&self) -> &[String] {
        &self.0.alternative_titles
    }
    /// Version of the row: +1 per write.
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Creation time (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }
    /// Last change (RFC 3339).
    async fn updated_at(&self) -> String {
        rfc3339(self.0.updated_at)
    }
    /// Episodes by number: at most `first` (default and most 100) after skipping `offset`.
    #[graphql(complexity = "limits::list_cost(first, child_complexity)")]
    async fn episodes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<EpisodeNode>> {
        let (domain, _) = parts(ctx);
        let list = domain.episodes_of(self.0.id).await.extend()?;
        Ok(limits::slice(list, first, offset)
            .extend()?
            .into_iter()
            .map(EpisodeNode)
            .collect())
    }
    /// Comments on this anime and its episodes, oldest first.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CommentConnection> {
        super::page::comment_page(ctx, CommentTarget::Anime(self.0.id), first, after).await
    }
}

/// An episode.
#[derive(Debug, Clone)]
pub struct EpisodeNode(pub domain::Episode);

impl From<domain::Episode> for EpisodeNode {
    fn from(e: domain::Episode) -> Self {
        Self(e)
    }
}

/// An episode of an anime.
#[Object(name = "Episode")]
impl EpisodeNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Number, unique per anime.
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// Title, if it has one.
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    /// Duration in seconds.
    async fn duration_seconds(&self) -> Option<i32> {
        self.0.duration_seconds
    }
    /// Air date (YYYY-MM-DD).
    async fn air_date(&self) -> Option<String> {
        self.0.air_date.map(|d| d.format("%Y-%m-%d").to_string())
    }
    /// Version of the row.
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Its anime (null once deleted).
    async fn anime(&self, ctx: &Context<'_>) -> Result<Option<AnimeNode>> {
        let (domain, _) = parts(ctx);
        Ok(domain.anime(self.0.anime_id).await.extend()?.map(AnimeNode))
    }
    /// Comments on this episode, oldest first.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CommentConnection> {
        super::page::comment_page(ctx, CommentTarget::Episode(self.0.id), first, after).await
    }
}

/// A comment.
#[derive(Debug, Clone)]
pub struct CommentNode(pub domain::Comment);

impl From<domain::Comment> for CommentNode {
    fn from(c: domain::Comment) -> Self {
        Self(c)
    }
}

/// A comment on an anime or an episode.
#[Object(name = "Comment")]
impl CommentNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Text, exactly as posted.
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// Visibility.
    async fn status(&self) -> CommentStatus {
        self.0.status
    }
    /// Why it was moderated: its author and moderators only.
    async fn moderation_reason(&self, ctx: &Context<'_>) -> Option<&str> {
        let (_, caller) = parts(ctx);
        let allowed = caller.viewer.is_moderator() || caller.viewer.id() == Some(self.0.author_id);
        if allowed {
            self.0.moderation_reason.as_deref()
        } else {
            None
        }
    }
    /// When it was moderated (RFC 3339).
    async fn moderated_at(&self) -> Option<String> {
        self.0.moderated_at.map(rfc3339)
    }
    /// Version of the row.
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Creation time (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }
    /// Author.
    async fn author(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let (domain, _) = parts(ctx);
        Ok(domain
            .user(self.0.author_id)
            .await
            .extend()?
            .map(UserNode::of))
    }
    /// The anime.
    async fn anime(&self, ctx: &Context<'_>) -> Result<Option<AnimeNode>> {
        let (domain, _) = parts(ctx);
        Ok(domain.anime(self.0.anime_id).await.extend()?.map(AnimeNode))
    }
    /// The episode, when on one.
    async fn episode(&self, ctx: &Context<'_>) -> Result<Option<EpisodeNode>> {
        let (domain, _) = parts(ctx);
        match self.0.episode_id {
            Some(id) => Ok(domain.episode(id).await.extend()?.map(EpisodeNode)),
            None => Ok(None),
        }
    }
}

/// An organization.
#[derive(Debug, Clone)]
pub struct OrganizationNode(pub domain::Organization);

/// An organization and its members.
#[Object(name = "Organization")]
impl OrganizationNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Unique slug.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Version of the row: +1 per change, membership included.
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Creator.
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let (domain, _) = parts(ctx);
        Ok(domain
            .user(self.0.owner_id)
            .await
            .extend()?
            .map(UserNode::of))
    }
    /// Members, oldest first: at most `first` (default and most 100) after skipping
    /// `offset`.
    #[graphql(complexity = "limits::list_cost(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<MemberNode>> {
        let (domain, _) = parts(ctx);
        let list = domain.members(self.0.id).await.extend()?;
        Ok(limits::slice(list, first, offset)
            .extend()?
            .into_iter()
            .map(MemberNode)
            .collect())
    }
}

/// A member of an organization.
#[derive(Debug, Clone)]
pub struct MemberNode(pub domain::Member);

/// A member of an organization.
#[Object(name = "Member")]
impl MemberNode {
    /// Role in the organization.
    async fn role(&self) -> MemberRole {
        self.0.member_role
    }
    /// The user.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let (domain, _) = parts(ctx);
        Ok(domain
            .user(self.0.user_id)
            .await
            .extend()?
            .map(UserNode::of))
    }
}

/// A subscription to a plan.
#[derive(Debug, Clone)]
pub struct SubscriptionNode(pub domain::PlanSubscription);

/// A user's subscription to a plan (`PlanSubscription`: GraphQL's `Subscription` is the
/// root type of subscriptions).
#[Object(name = "PlanSubscription")]
impl SubscriptionNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Plan.
    async fn plan(&self) -> Plan {
        self.0.plan
    }
    /// State.
    async fn status(&self) -> SubscriptionStatus {
        self.0.status
    }
    /// Start (RFC 3339).
    async fn started_at(&self) -> String {
        rfc3339(self.0.started_at)
    }
    /// Cancellation (RFC 3339).
    async fn cancelled_at(&self) -> Option<String> {
        self.0.cancelled_at.map(rfc3339)
    }
    /// Version of the row.
    async fn version(&self) -> i64 {
        self.0.version
    }
}

/// A log level, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal operation.
    Info,
    /// Something to look at.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// As records spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One structured field of a log record.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub struct LogField {
    /// Its name.
    pub key: String,
    /// Its value, as text.
    pub value: String,
}

/// One log record of any service, from log storage.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub struct LogEntry {
    /// When it was logged (RFC 3339, UTC).
    pub timestamp: String,
    /// `TRACE` … `ERROR`.
    pub level: String,
    /// The service that logged it.
    pub service: String,
    /// The request's correlation id.
    pub correlation_id: Option<String>,
    /// The trace id.
    pub trace_id: Option<String>,
    /// The message.
    pub message: String,
    /// Its structured fields (secrets are redacted before records leave the services).
    pub context: Vec<LogField>,
}

impl From<anineplus_connectors::log_search::LogHit> for LogEntry {
    fn from(hit: anineplus_connectors::log_search::LogHit) -> Self {
        LogEntry {
            timestamp: hit.timestamp,
            level: hit.level,
            service: hit.service,
            correlation_id: hit.correlation_id,
            trace_id: hit.trace_id,
            message: hit.message,
            context: hit
                .context
                .into_iter()
                .map(|(key, value)| LogField { key, value })
                .collect(),
        }
    }
}

/// An anime and how many comments it got in a `trendingAnime` window.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "TrendingAnime")]
pub struct TrendingAnimeNode {
    /// The anime.
    pub anime: AnimeNode,
    /// Its visible, undeleted comments created in the window, as the analytics pipeline
    /// counted them (at least 1).
    pub comment_count: i32,
}

impl From<domain::Trending> for TrendingAnimeNode {
    fn from(t: domain::Trending) -> Self {
        TrendingAnimeNode {
            anime: AnimeNode(t.anime),
            comment_count: saturating_int(t.comments),
        }
    }
}

/// The active subscriptions of one plan, as the analytics pipeline counted them.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "PlanCount")]
pub struct PlanCountNode {
    /// The plan (`BASIC`, `STANDARD`, `PREMIUM`).
    pub plan: String,
    /// Its active subscriptions.
    pub active: i32,
}

impl From<crate::stats::PlanCount> for PlanCountNode {
    fn from(p: crate::stats::PlanCount) -> Self {
        PlanCountNode {
            plan: p.plan,
            active: saturating_int(p.active),
        }
    }
}

/// A count as a GraphQL `Int` (32 bits): larger counts answer the largest `Int`.
fn saturating_int(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}
