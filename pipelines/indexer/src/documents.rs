//! Events → search documents. Pure: one event gives the writes that reflect it.
//!
//! Anime and episodes have only whole-state events (`*.created`, `*.updated`): whole-document
//! writes at the event's `aggregateVersion`; deletes are soft-delete tombstones at the
//! delete's version. Users, organizations and comments also have events carrying part of
//! the entity (`user.updated` lacks `createdAt`, `comment.moderated`,
//! `organization.updated`, membership changes): every write of theirs, whole or partial,
//! goes field by field ([`Document::fields`]: each field, and each member, set only over an
//! older version of it), so the document ends at the latest state of every field in any
//! order of the events: a partial event indexed before the whole-state one it follows is
//! not undone by it. Their deletes are tombstones that clear the fields.
//! Subscriptions have no index yet: their events produce no writes.
//!
//! Denormalised fields (see [`super::denormalise`]): an episode event also writes its
//! anime's `episodes`/`episodeCount`; anime and comment documents are therefore written
//! with [`Document::replace`] (guarded by `aggregateVersion`, keeping those fields) instead
//! of external versions. Comments get `animeTitle` from the indexer's sink once written.

use anineplus_connectors::search_sink::{self, Document};
use anineplus_schemas::events::{
    AnimeData, AnimeStatus, CommentData, CommentStatus, Envelope, EpisodeData, OrganizationData,
    SubscriptionData, UserData, UserRole,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::denormalise;
use super::indices::Index;

/// Builds documents for the indices under one prefix.
#[derive(Debug, Clone)]
pub struct Documents {
    /// The alias of each index (in the order of [`Index::ALL`]), made once: every
    /// document names one.
    aliases: [String; 5],
}

const DAY_MS: i64 = 86_400_000;

/// An organization's `members`: the keyed collection (field, key of each value, the field
/// naming the entry shown first) of [`Document::with_entries`]: the owner first, then by
/// user id.
pub const MEMBERS: (&str, &str, &str) = ("members", "userId", "ownerId");

// The documents' sources, serialised straight from the events' fields (no JSON tree). Keys
// are declared in sorted order, as a `serde_json` object would write them, so a body is
// the same bytes however a peer makes it.

/// An anime document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnimeSource<'a> {
    aggregate_version: i64,
    alternative_titles: &'a [String],
    deleted: bool,
    genres: &'a [String],
    id: &'a str,
    release_year: Option<i32>,
    status: &'a AnimeStatus,
    synopsis: &'a Option<String>,
    title: &'a str,
    updated_at: i64,
}

/// An episode document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpisodeSource<'a> {
    aggregate_version: i64,
    air_date: Option<i64>,
    anime_id: &'a str,
    deleted: bool,
    duration_seconds: Option<i32>,
    id: &'a str,
    number: i32,
    title: &'a Option<String>,
    updated_at: i64,
}

/// The fields of `comment.created`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentPostedFields<'a> {
    anime_id: &'a str,
    author_id: &'a str,
    body: &'a str,
    created_at: i64,
    deleted: bool,
    episode_id: &'a Option<String>,
    status: &'a CommentStatus,
    updated_at: i64,
}

/// The fields of `comment.moderated`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentModeratedFields<'a> {
    anime_id: &'a str,
    episode_id: &'a Option<String>,
    moderated_at: i64,
    moderated_by: &'a str,
    moderation_reason: &'a Option<String>,
    status: &'a CommentStatus,
    updated_at: i64,
}

/// The fields of `user.created` (`created_at`, `deleted`) and `user.updated` (neither).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    name: &'a str,
    role: &'a UserRole,
    updated_at: i64,
}

/// The fields of `organization.created` (`deleted`, `owner_id`) and
/// `organization.updated` (neither).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<&'a str>,
    slug: &'a str,
    updated_at: i64,
}

/// The fields of a membership change: only the time (the entry goes beside them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Touched {
    updated_at: i64,
}

impl Documents {
    /// Documents for the indices `<prefix>-*`.
    pub fn new(prefix: &str) -> Self {
        Documents {
            aliases: Index::ALL.map(|index| index.alias(prefix)),
        }
    }

    /// The alias `<prefix>-<name>` of `index`.
    fn alias(&self, index: Index) -> String {
        self.aliases[index as usize].clone()
    }

    /// A whole-document write that keeps the index's denormalised fields.
    fn replace<T>(&self, index: Index, e: &Envelope<T>, source: impl Serialize) -> Document {
        Document::replace(
            self.alias(index),
            &e.aggregate_id,
            e.aggregate_version,
            source,
            denormalise::kept(index),
        )
    }

    /// Some of the entity's fields (whole state or part of it, `updatedAt` included),
    /// written field by field ([`Document::fields`]): for the entities that have partial
    /// events.
    fn fields<T>(&self, index: Index, e: &Envelope<T>, fields: impl Serialize) -> Document {
        Document::fields(
            self.alias(index),
            &e.aggregate_id,
            e.aggregate_version,
            fields,
        )
    }

    fn tombstone<T>(&self, index: Index, e: &Envelope<T>) -> Document {
        if Self::field_versioned(index) {
            return Document::fields_tombstone(
                self.alias(index),
                &e.aggregate_id,
                e.aggregate_version,
                json!({ "updatedAt": e.timestamp }),
                denormalise::kept(index),
            );
        }
        Document::soft_delete(self.alias(index), &e.aggregate_id, e.aggregate_version)
    }

    /// Whether `index`'s entity has partial events, so that its documents are written
    /// field by field ([`Document::fields`]): a partial event applied before an older
    /// whole-state one (a retry topic, a replay) must not be undone by it.
    pub fn field_versioned(index: Index) -> bool {
        matches!(index, Index::Users | Index::Organizations | Index::Comments)
    }

    /// The tombstone of document `id` of `index` at `version`, written the way the
    /// indexer writes that index's deletes (for repairs of documents without a row).
    pub fn tombstone_of(&self, index: Index, id: &str, version: i64) -> Document {
        if Self::field_versioned(index) {
            return Document::fields_tombstone(
                self.alias(index),
                id,
                version,
                json!({}),
                denormalise::kept(index),
            );
        }
        if denormalise::kept(index).is_empty() {
            return Document::soft_delete(self.alias(index), id, version);
        }
        Document::replace(
            self.alias(index),
            id,
            version,
            search_sink::tombstone(id, version),
            denormalise::kept(index),
        )
    }

    /// `anime` events.
    pub fn anime(&self, e: Envelope<AnimeData>) -> Vec<Document> {
        vec![match &e.data {
            AnimeData::AnimeCreated(s) | AnimeData::AnimeUpdated(s) => self.replace(
                Index::Anime,
                &e,
                AnimeSource {
                    aggregate_version: e.aggregate_version,
                    alternative_titles: &s.alternative_titles,
                    deleted: false,
                    genres: &s.genres,
                    id: &e.aggregate_id,
                    release_year: s.release_year,
                    status: &s.status,
                    synopsis: &s.synopsis,
                    title: &s.title,
                    updated_at: e.timestamp,
                },
            ),
            AnimeData::AnimeDeleted(_) => self.replace(
                Index::Anime,
                &e,
                search_sink::Tombstone {
                    updated_at: Some(e.timestamp),
                    ..search_sink::tombstone(&e.aggregate_id, e.aggregate_version)
                },
            ),
        }]
    }

    /// `episode` events: the episode's document, and its entry in its anime's episode count.
    pub fn episode(&self, e: Envelope<EpisodeData>) -> Vec<Document> {
        let (anime_id, live) = match &e.data {
            EpisodeData::EpisodeCreated(s) | EpisodeData::EpisodeUpdated(s) => (&s.anime_id, true),
            EpisodeData::EpisodeDeleted(d) => (&d.anime_id, false),
        };
        let on_anime = denormalise::episode_on_anime(
            self.alias(Index::Anime),
            anime_id,
            &e.aggregate_id,
            e.aggregate_version,
            live,
        );
        let own = match &e.data {
            EpisodeData::EpisodeCreated(s) | EpisodeData::EpisodeUpdated(s) => Document::index(
                self.alias(Index::Episodes),
                &e.aggregate_id,
                e.aggregate_version,
                EpisodeSource {
                    aggregate_version: e.aggregate_version,
                    air_date: s.air_date.map(|d| i64::from(d) * DAY_MS),
                    anime_id: &s.anime_id,
                    deleted: false,
                    duration_seconds: s.duration_seconds,
                    id: &e.aggregate_id,
                    number: s.number,
                    title: &s.title,
                    updated_at: e.timestamp,
                },
            ),
            EpisodeData::EpisodeDeleted(_) => self.tombstone(Index::Episodes, &e),
        };
        vec![own, on_anime]
    }

    /// `comment` events.
    pub fn comment(&self, e: Envelope<CommentData>) -> Vec<Document> {
        vec![match &e.data {
            CommentData::CommentCreated(c) => self.fields(
                Index::Comments,
                &e,
                CommentPostedFields {
                    anime_id: &c.anime_id,
                    author_id: &c.author_id,
                    body: &c.body,
                    created_at: c.created_at,
                    deleted: false,
                    episode_id: &c.episode_id,
                    status: &c.status,
                    updated_at: e.timestamp,
                },
            ),
            CommentData::CommentModerated(m) => self.fields(
                Index::Comments,
                &e,
                CommentModeratedFields {
                    anime_id: &m.anime_id,
                    episode_id: &m.episode_id,
                    moderated_at: m.moderated_at,
                    moderated_by: &m.moderated_by,
                    moderation_reason: &m.reason,
                    status: &m.status,
                    updated_at: e.timestamp,
                },
            ),
            CommentData::CommentDeleted(_) => self.tombstone(Index::Comments, &e),
        }]
    }

    /// `user` events: never the email.
    pub fn user(&self, e: Envelope<UserData>) -> Vec<Document> {
        vec![match &e.data {
            UserData::UserCreated(u) => self.fields(
                Index::Users,
                &e,
                UserFields {
                    created_at: Some(u.created_at),
                    deleted: Some(false),
                    name: &u.name,
                    role: &u.role,
                    updated_at: e.timestamp,
                },
            ),
            UserData::UserUpdated(u) => self.fields(
                Index::Users,
                &e,
                UserFields {
                    created_at: None,
                    deleted: None,
                    name: &u.name,
                    role: &u.role,
                    updated_at: e.timestamp,
                },
            ),
            UserData::UserDeleted(_) => self.tombstone(Index::Users, &e),
        }]
    }

    /// `organization` events.
    pub fn organization(&self, e: Envelope<OrganizationData>) -> Vec<Document> {
        let touched = Touched {
            updated_at: e.timestamp,
        };
        vec![match &e.data {
            OrganizationData::OrganizationCreated(o) => self
                .fields(
                    Index::Organizations,
                    &e,
                    OrganizationFields {
                        deleted: Some(false),
                        name: &o.name,
                        owner_id: Some(&o.owner_id),
                        slug: &o.slug,
                        updated_at: e.timestamp,
                    },
                )
                .with_entries(
                    MEMBERS.0,
                    MEMBERS.1,
                    MEMBERS.2,
                    entry(
                        &o.owner_id,
                        json!({ "userId": o.owner_id, "role": "OWNER" }),
                    ),
                    true,
                ),
            OrganizationData::OrganizationUpdated(o) => self.fields(
                Index::Organizations,
                &e,
                OrganizationFields {
                    deleted: None,
                    name: &o.name,
                    owner_id: None,
                    slug: &o.slug,
                    updated_at: e.timestamp,
                },
            ),
            OrganizationData::OrganizationMemberAdded(m) => {
                self.fields(Index::Organizations, &e, touched).with_entries(
                    MEMBERS.0,
                    MEMBERS.1,
                    MEMBERS.2,
                    entry(
                        &m.user_id,
                        json!({ "userId": m.user_id, "role": m.member_role }),
                    ),
                    false,
                )
            }
            OrganizationData::OrganizationMemberRemoved(m) => {
                self.fields(Index::Organizations, &e, touched).with_entries(
                    MEMBERS.0,
                    MEMBERS.1,
                    MEMBERS.2,
                    entry(&m.user_id, Value::Null),
                    false,
                )
            }
        }]
    }

    /// `subscription` events: no index yet.
    pub fn subscription(&self, _: Envelope<SubscriptionData>) -> Vec<Document> {
        Vec::new()
    }
}

/// `{key: value}`.
fn entry(key: &str, value: Value) -> Value {
    Value::Object(serde_json::Map::from_iter([(key.to_owned(), value)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_connectors::search_sink::Action;
    use anineplus_schemas::events::samples;

    #[test]
    fn each_index_has_its_own_alias() {
        let docs = Documents::new("p");
        for index in Index::ALL {
            assert_eq!(docs.alias(index), index.alias("p"));
        }
    }

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
        assert_eq!(created.version, 1);
        let Action::Script { params, .. } = &created.action else {
            panic!("users are written field by field")
        };
        let params = params.value();
        assert_eq!(params["fields"]["deleted"], json!(false));
        assert!(params["fields"]["createdAt"].is_i64());
        let Action::Script { params, .. } = &out[1].action else {
            panic!()
        };
        let params = params.value();
        assert!(
            params["fields"].get("createdAt").is_none(),
            "user.updated is partial"
        );
        let Action::Script { params, .. } = &out[2].action else {
            panic!()
        };
        let params = params.value();
        assert_eq!(params["tombstone"], json!(true));
        assert_eq!(params["fields"]["deleted"], json!(true));
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
        let params = params.value();
        assert_eq!(params["episodeId"], json!(episode.aggregate_id));
        assert_eq!(params["live"], json!(true));
        let anime = docs.anime(all.anime[0].clone());
        let Action::Update { params, .. } = &anime[0].action else {
            panic!("anime documents are replaced, not external versions")
        };
        let params = params.value();
        assert_eq!(params["keep"], json!(["episodes", "episodeCount"]));
        let comment = docs.comment(all.comments[0].clone());
        let Action::Script { params, .. } = &comment[0].action else {
            panic!()
        };
        let params = params.value();
        assert!(
            params["fields"].get("animeTitle").is_none(),
            "field by field: the title is left alone"
        );
        let id = all.comments[0].aggregate_id.clone();
        let tomb = docs.tombstone_of(Index::Comments, &id, 3);
        let Action::Script { params, .. } = &tomb.action else {
            panic!()
        };
        let params = params.value();
        assert_eq!(params["keep"], json!(["animeTitle", "animeTitleVersion"]));
    }

    #[test]
    fn anime_documents_carry_alternative_titles_in_sorted_keys() {
        let docs = Documents::new("p");
        let event = samples::anime_updated(7);
        let AnimeData::AnimeUpdated(state) = &event.data else {
            panic!("an update")
        };
        let expected = state.alternative_titles.clone();
        let out = docs.anime(event.clone());
        let Action::Update { params, .. } = &out[0].action else {
            panic!("anime documents are replaced")
        };
        let source = &params.value()["source"];
        assert_eq!(source["alternativeTitles"], json!(expected));
        // The body's bytes: keys in sorted order, as a JSON object would write them.
        let raw = params.as_str();
        let at = |key: &str| raw.find(&format!("\"{key}\"")).expect(key);
        assert!(at("aggregateVersion") < at("alternativeTitles"), "{raw}");
        assert!(at("alternativeTitles") < at("deleted"), "{raw}");
    }
}
