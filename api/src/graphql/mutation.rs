//! The mutation root. Each mutation is one domain call, hence one transaction with its
//! outbox row.

use async_graphql::{Context, ID, Object, Result, ResultExt};

use super::inputs::*;
use super::parts;
use super::types::{
    AnimeNode, AuthPayload, CommentNode, EpisodeNode, OrganizationNode, SubscriptionNode, UserNode,
};
use crate::domain::{
    AnimeChange, CommentStatus, EpisodeChange, EpisodeFields, NewAnime, Plan, validate,
};
use crate::ratelimit::PasswordGate;

/// Writes.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates an account and signs it in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<AuthPayload> {
        let (domain, caller) = parts(ctx);
        let sign_up = domain.sign_up(caller, &input.email, &input.name, &input.password);
        let (token, user) = PasswordGate::hashing(ctx.data_opt(), sign_up)
            .await
            .extend()?;
        Ok(AuthPayload {
            token,
            user: UserNode(user, true),
        })
    }

    /// Signs in.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let (domain, _) = parts(ctx);
        let login = domain.login(&input.email, &input.password);
        let (token, user) = PasswordGate::login(ctx.data_opt(), &input.email, login)
            .await
            .extend()?;
        Ok(AuthPayload {
            token,
            user: UserNode(user, true),
        })
    }

    /// Changes the caller's profile.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> Result<UserNode> {
        let (domain, caller) = parts(ctx);
        Ok(UserNode::of(
            domain.update_profile(caller, &input.name).await.extend()?,
        ))
    }

    /// Adds an anime to the catalog (ADMIN).
    async fn create_anime(&self, ctx: &Context<'_>, input: CreateAnimeInput) -> Result<AnimeNode> {
        let (domain, caller) = parts(ctx);
        let anime = domain
            .create_anime(
                caller,
                NewAnime {
                    title: input.title,
                    synopsis: input.synopsis,
                    genres: input.genres,
                    status: input.status,
                    release_year: input.release_year,
                    alternative_titles: input.alternative_titles,
                },
            )
            .await
            .extend()?;
        Ok(AnimeNode(anime))
    }

    /// Changes an anime (ADMIN).
    async fn update_anime(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAnimeInput,
    ) -> Result<AnimeNode> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("anime", &id).extend()?;
        let change = AnimeChange {
            title: required("title", input.title).extend()?,
            synopsis: optional(input.synopsis),
            genres: required("genres", input.genres).extend()?,
            status: required("status", input.status).extend()?,
            release_year: optional(input.release_year),
            alternative_titles: required("alternativeTitles", input.alternative_titles).extend()?,
        };
        Ok(AnimeNode(
            domain.update_anime(caller, id, change).await.extend()?,
        ))
    }

    /// Deletes an anime (ADMIN).
    async fn delete_anime(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("anime", &id).extend()?;
        domain.delete_anime(caller, id).await.extend()
    }

    /// Adds an episode (ADMIN).
    async fn create_episode(
        &self,
        ctx: &Context<'_>,
        input: CreateEpisodeInput,
    ) -> Result<EpisodeNode> {
        let (domain, caller) = parts(ctx);
        let anime = validate::id("anime", &input.anime_id).extend()?;
        let fields = EpisodeFields {
            number: Some(input.number),
            title: input.title,
            duration_seconds: input.duration_seconds,
            air_date: validate::date("airDate", input.air_date.as_deref()).extend()?,
        };
        Ok(EpisodeNode(
            domain
                .create_episode(caller, anime, fields)
                .await
                .extend()?,
        ))
    }

    /// Changes an episode (ADMIN).
    async fn update_episode(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateEpisodeInput,
    ) -> Result<EpisodeNode> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("episode", &id).extend()?;
        let air_date = match optional(input.air_date) {
            Some(Some(date)) => Some(validate::date("airDate", Some(&date)).extend()?),
            Some(None) => Some(None),
            None => None,
        };
        let change = EpisodeChange {
            number: required("number", input.number).extend()?,
            title: optional(input.title),
            duration_seconds: optional(input.duration_seconds),
            air_date,
        };
        Ok(EpisodeNode(
            domain.update_episode(caller, id, change).await.extend()?,
        ))
    }

    /// Deletes an episode (ADMIN).
    async fn delete_episode(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("episode", &id).extend()?;
        domain.delete_episode(caller, id).await.extend()
    }

    /// Posts a comment on an anime or one of its episodes (signed in).
    async fn post_comment(
        &self,
        ctx: &Context<'_>,
        input: PostCommentInput,
    ) -> Result<CommentNode> {
        let (domain, caller) = parts(ctx);
        let anime = validate::id("anime", &input.anime_id).extend()?;
        let episode = input
            .episode_id
            .as_ref()
            .map(|e| validate::id("episode", e))
            .transpose()
            .extend()?;
        Ok(CommentNode(
            domain
                .post_comment(caller, anime, episode, &input.body)
                .await
                .extend()?,
        ))
    }

    /// Hides or shows a comment (MODERATOR, ADMIN).
    async fn moderate_comment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: CommentStatus,
        reason: Option<String>,
    ) -> Result<CommentNode> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("comment", &id).extend()?;
        Ok(CommentNode(
            domain
                .moderate_comment(caller, id, status, reason.as_deref())
                .await
                .extend()?,
        ))
    }

    /// Deletes a comment (its author; MODERATOR, ADMIN any): it leaves every list and the
    /// search index (`comment.deleted`).
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("comment", &id).extend()?;
        domain.delete_comment(caller, id).await.extend()
    }

    /// Deletes the caller's account: email, name and password leave the database and the
    /// search index (`user.deleted`); memberships end, an active subscription is cancelled,
    /// comments stay without an author. The caller's tokens act no more.
    async fn delete_account(&self, ctx: &Context<'_>) -> Result<bool> {
        let (domain, caller) = parts(ctx);
        let (me, _) = caller.viewer.require().extend()?;
        domain.delete_user(caller, me).await.extend()
    }

    /// Deletes a user as `deleteAccount` does (ADMIN; or the user themself).
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("user", &id).extend()?;
        domain.delete_user(caller, id).await.extend()
    }

    /// Renames an organization or changes its slug (the owner or an admin).
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateOrganizationInput,
    ) -> Result<OrganizationNode> {
        let (domain, caller) = parts(ctx);
        let org = validate::id("organization", &id).extend()?;
        Ok(OrganizationNode(
            domain
                .update_organization(caller, org, input.name.as_deref(), input.slug.as_deref())
                .await
                .extend()?,
        ))
    }

    /// Creates an organization owned by the caller.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> Result<OrganizationNode> {
        let (domain, caller) = parts(ctx);
        Ok(OrganizationNode(
            domain
                .create_organization(caller, &input.name, &input.slug)
                .await
                .extend()?,
        ))
    }

    /// Adds a member (the owner or an admin).
    async fn add_member(
        &self,
        ctx: &Context<'_>,
        input: AddMemberInput,
    ) -> Result<OrganizationNode> {
        let (domain, caller) = parts(ctx);
        let org = validate::id("organization", &input.organization_id).extend()?;
        let user = validate::id("user", &input.user_id).extend()?;
        Ok(OrganizationNode(
            domain
                .add_member(caller, org, user, input.role)
                .await
                .extend()?,
        ))
    }

    /// Removes a member (the owner or an admin).
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
        user_id: ID,
    ) -> Result<OrganizationNode> {
        let (domain, caller) = parts(ctx);
        let org = validate::id("organization", &organization_id).extend()?;
        let user = validate::id("user", &user_id).extend()?;
        Ok(OrganizationNode(
            domain.remove_member(caller, org, user).await.extend()?,
        ))
    }

    /// Subscribes the caller to a plan.
    async fn subscribe(&self, ctx: &Context<'_>, plan: Plan) -> Result<SubscriptionNode> {
        let (domain, caller) = parts(ctx);
        Ok(SubscriptionNode(
            domain.subscribe(caller, plan).await.extend()?,
        ))
    }

    /// Cancels a subscription (its owner or an admin).
    async fn cancel_subscription(&self, ctx: &Context<'_>, id: ID) -> Result<SubscriptionNode> {
        let (domain, caller) = parts(ctx);
        let id = validate::id("subscription", &id).extend()?;
        Ok(SubscriptionNode(
            domain.cancel_subscription(caller, id).await.extend()?,
        ))
    }
}
