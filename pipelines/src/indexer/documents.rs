//! Events → search documents. Pure: one event gives the writes that reflect it.
//!
//! Whole-state events (`*.created`, `anime|episode.updated`) are whole-document writes at
//! the event's `aggregateVersion`; deletes are soft-delete tombstones at the delete's
//! version; events carrying part of an entity (`user.updated` lacks `createdAt`,
//! `comment.moderated`, `organization.updated` and membership changes) are
//! version-guarded partial updates, so nothing they do not carry is lost.
//! Subscriptions have no index yet: their events produce no writes.
//!
//! Denormalised fields (see [`super::denormalise`]): an episode event also writes its
//! anime's `episodes`/`episodeCount`; anime and comment documents are therefore written
//! with [`Document::replace`] (guarded by `aggregateVersion`, keeping those fields) instead
//! of external versions. Comments get `animeTitle` from the indexer's sink once written.

use anineplus_connectors::search_sink::{self, Action, Document};
use anineplus_schemas::events::{
    AnimeData, CommentData, Envelope, EpisodeData, OrganizationData, SubscriptionData, UserData,
};
use serde_json::{Value, json};

use super::denormalise;
use super::indices::Index;

/// Builds documents for the indices under one prefix.
#[derive(Debug, Clone)]
pub struct Documents {
    prefix: String,
}

const DAY_MS: i64 = 86_400_000;

impl Documents {
    /// Documents for the indices `<prefix>-*`.
    pub fn new(prefix: &str) -> Self {
        Documents {
            prefix: prefix.to_owned(),
        }
    }

    /// `source` with the fields every live document has.
    fn stamped<T>(e: &Envelope<T>, mut source: Value) -> Value {
        source["id"] = e.aggregate_id.clone().into();
        source["aggregateVersion"] = e.aggregate_version.into();
        source["deleted"] = false.into();
        source["updatedAt"] = e.timestamp.into();
        source
    }

    fn whole<T>(&self, index: Index, e: &Envelope<T>, source: Value) -> Document {
        let source = Self::stamped(e, source);
        Document::index(
            index.alias(&self.prefix),
            &e.aggregate_id,
            e.aggregate_version,
            source,
        )
    }

    /// A whole-document write that keeps the index's denormalised fields.
    fn replace<T>(&self, index: Index, e: &Envelope<T>, source: Value) -> Document {
        self.replacing(index, e, Self::stamped(e, source))
    }

    /// The tombstone of an index with denormalised fields.
    fn replace_tombstone<T>(&self, index: Index, e: &Envelope<T>) -> Document {
        let mut source = search_sink::tombstone(&e.aggregate_id, e.aggregate_version);
        source["updatedAt"] = e.timestamp.into();
        self.replacing(index, e, source)
    }

    fn replacing<T>(&self, index: Index, e: &Envelope<T>, source: Value) -> Document {
        Document::replace(
            index.alias(&self.prefix),
            &e.aggregate_id,
            e.aggregate_version,
            source,
            denormalise::kept(index),
        )
    }

    fn partial<T>(&self, index: Index, e: &Envelope<T>, mut fields: Value) -> Document {
        fields["updatedAt"] = e.timestamp.into();
        Document::merge(
            index.alias(&self.prefix),
            &e.aggregate_id,
            e.aggregate_version,
            fields,
        )
    }

    fn script<T>(&self, index: Index, e: &Envelope<T>, script: &str, params: Value) -> Document {
        Document {
            index: index.alias(&self.prefix),
            id: e.aggregate_id.clone(),
            version: e.aggregate_version,
            action: Action::Update {
                script: script.to_owned(),
                params,
            },
        }
    }

    fn tombstone<T>(&self, index: Index, e: &Envelope<T>) -> Document {
        Document::soft_delete(
            index.alias(&self.prefix),
            &e.aggregate_id,
            e.aggregate_version,
        )
    }

    /// The tombstone of document `id` of `index` at `version`, written the way the
    /// indexer writes that index's deletes (for repairs of documents without a row).
    pub fn tombstone_of(&self, index: Index, id: &str, version: i64) -> Document {
        if denormalise::kept(index).is_empty() {
            return Document::soft_delete(index.alias(&self.prefix), id, version);
        }
        let source = search_sink::tombstone(id, version);
        Document::replace(
            index.alias(&self.prefix),
            id,
            version,
            source,
            denormalise::kept(index),
        )
    }

    /// `anime` events.
    pub fn anime(&self, e: Envelope<AnimeData>) -> Vec<Document> {
        vec![match &e.data {
            AnimeData::AnimeCreated(s) | AnimeData::AnimeUpdated(s) => self.replace(
                Index::Anime,
                &e,
                json!({
                    "title": s.title, "synopsis": s.synopsis, "genres": s.genres,
                    "status": s.status, "releaseYear": s.release_year,
                }),
            ),
            AnimeData::AnimeDeleted(_) => self.replace_tombstone(Index::Anime, &e),
        }]
    }

    /// `episode` events: the episode's document, and its entry in its anime's episode count.
    pub fn episode(&self, e: Envelope<EpisodeData>) -> Vec<Document> {
        let (anime_id, live) = match &e.data {
            EpisodeData::EpisodeCreated(s) | EpisodeData::EpisodeUpdated(s) => (&s.anime_id, true),
            EpisodeData::EpisodeDeleted(d) => (&d.anime_id, false),
        };
        let on_anime = denormalise::episode_on_anime(
            Index::Anime.alias(&self.prefix),
            anime_id,
            &e.aggregate_id,
            e.aggregate_version,
            live,
        );
        let own = match &e.data {
            EpisodeData::EpisodeCreated(s) | EpisodeData::EpisodeUpdated(s) => self.whole(
                Index::Episodes,
                &e,
                json!({
                    "animeId": s.anime_id, "number": s.number, "title": s.title,
                    "durationSeconds": s.duration_seconds,
                    "airDate": s.air_date.map(|d| i64::from(d) * DAY_MS),
                }),
            ),
            EpisodeData::EpisodeDeleted(_) => self.tombstone(Index::Episodes, &e),
        };
        vec![own, on_anime]
    }

    /// `comment` events.
    pub fn comment(&self, e: Envelope<CommentData>) -> Vec<Document> {
        vec![match &e.data {
            CommentData::CommentCreated(c) => self.replace(
                Index::Comments,
                &e,
                json!({
                    "animeId": c.anime_id, "episodeId": c.episode_id, "authorId": c.author_id,
                    "body": c.body, "status": c.status, "createdAt": c.created_at,
                }),
            ),
            CommentData::CommentModerated(m) => self.partial(
                Index::Comments,
                &e,
                json!({
                    "animeId": m.anime_id, "episodeId": m.episode_id, "status": m.status,
                    "moderationReason": m.reason, "moderatedBy": m.moderated_by,
                    "moderatedAt": m.moderated_at,
                }),
            ),
            CommentData::CommentDeleted(_) => self.replace_tombstone(Index::Comments, &e),
        }]
    }

    /// `user` events: never the email.
    pub fn user(&self, e: Envelope<UserData>) -> Vec<Document> {
        vec![match &e.data {
            UserData::UserCreated(u) => self.whole(
                Index::Users,
                &e,
                json!({ "name": u.name, "role": u.role, "createdAt": u.created_at }),
            ),
            UserData::UserUpdated(u) => {
                self.partial(Index::Users, &e, json!({ "name": u.name, "role": u.role }))
            }
            UserData::UserDeleted(_) => self.tombstone(Index::Users, &e),
        }]
    }

    /// `organization` events.
    pub fn organization(&self, e: Envelope<OrganizationData>) -> Vec<Document> {
        vec![match &e.data {
            OrganizationData::OrganizationCreated(o) => self.whole(
                Index::Organizations,
                &e,
                json!({
                    "name": o.name, "slug": o.slug, "ownerId": o.owner_id,
                    "members": [{ "userId": o.owner_id, "role": "OWNER" }],
                }),
            ),
            OrganizationData::OrganizationUpdated(o) => self.partial(
                Index::Organizations,
                &e,
                json!({ "name": o.name, "slug": o.slug }),
            ),
            OrganizationData::OrganizationMemberAdded(m) => self.script(
                Index::Organizations,
                &e,
                "if (ctx._source.members == null) { ctx._source.members = [] } \
                 ctx._source.members.removeIf(m -> m.userId == params.userId); \
                 ctx._source.members.add(['userId': params.userId, 'role': params.role]); \
                 ctx._source.updatedAt = params.at",
                json!({ "userId": m.user_id, "role": m.member_role, "at": e.timestamp }),
            ),
            OrganizationData::OrganizationMemberRemoved(m) => self.script(
                Index::Organizations,
                &e,
                "if (ctx._source.members != null) { \
                 ctx._source.members.removeIf(m -> m.userId == params.userId) } \
                 ctx._source.updatedAt = params.at",
                json!({ "userId": m.user_id, "at": e.timestamp }),
            ),
        }]
    }

    /// `subscription` events: no index yet.
    pub fn subscription(&self, _: Envelope<SubscriptionData>) -> Vec<Document> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::events::samples;

    #[test]
    fn every_sample_event_maps_and_users_lose_their_email() {
        let docs = Documents::new("p");
        let all = samples::one_of_each();
        let mut out = Vec::new();
        out.extend(all.users.into_iter().flat_map(|e| docs.user(e)));
        out.extend(
            all.organizations
                .into_iter()
                .flat_map(|e| docs.organization(e)),
        );
        out.extend(all.anime.into_iter().flat_map(|e| docs.anime(e)));
        out.extend(all.episodes.into_iter().flat_map(|e| docs.episode(e)));
        out.extend(all.comments.into_iter().flat_map(|e| docs.comment(e)));
        assert!(
            all.subscriptions
                .into_iter()
                .all(|e| docs.subscription(e).is_empty())
        );
        for doc in &out {
            let text = format!("{doc:?}");
            assert!(!text.contains("@example.com"), "email leaked: {text}");
            assert!(doc.index.starts_with("p-"));
        }
        let created = &out[0];
        assert_eq!(created.index, "p-users");
        let Action::Index(source) = &created.action else {
            panic!()
        };
        assert_eq!(source["aggregateVersion"], json!(1));
        assert_eq!(source["deleted"], json!(false));
        assert!(
            matches!(out[1].action, Action::Update { .. }),
            "user.updated is partial"
        );
        let Action::Index(tomb) = &out[2].action else {
            panic!()
        };
        assert_eq!(tomb["deleted"], json!(true));
    }

    #[test]
    fn episodes_count_on_their_anime_and_denormalised_indices_keep_those_fields() {
        let docs = Documents::new("p");
        let all = samples::one_of_each();
        let episode = all.episodes[0].clone();
        let out = docs.episode(episode.clone());
        assert_eq!(out.len(), 2, "the episode and its entry on the anime");
        assert_eq!(out[0].index, "p-episodes");
        assert_eq!(out[1].index, "p-anime");
        let Action::Script { params, .. } = &out[1].action else {
            panic!("{:?}", out[1])
        };
        assert_eq!(params["episodeId"], json!(episode.aggregate_id));
        assert_eq!(params["live"], json!(true));
        let anime = docs.anime(all.anime[0].clone());
        let Action::Update { params, .. } = &anime[0].action else {
            panic!("anime documents are replaced, not external versions")
        };
        assert_eq!(params["keep"], json!(["episodes", "episodeCount"]));
        let comment = docs.comment(all.comments[0].clone());
        let Action::Update { params, .. } = &comment[0].action else {
            panic!()
        };
        assert_eq!(params["keep"], json!(["animeTitle", "animeTitleVersion"]));
    }
}
