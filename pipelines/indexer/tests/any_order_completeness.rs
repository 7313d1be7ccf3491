//! The events that the deletions, the organization rename and the cleared fields produce
//! (`user.deleted`, `comment.deleted`, `organization.updated`, `anime|episode.updated`
//! with null optional fields), on the real stack:
//!
//! - end to end: the mutations go API → outbox → relay → Kafka → indexer → OpenSearch and
//!   the documents show them (a deleted user's document holds no personal data, a deleted
//!   comment's no body, cleared fields are null) and `verify` finds no drift;
//! - in any order: every permutation of an entity's events, produced straight to its topic
//!   (one entity per permutation, so one partition each), ends at the highest version's
//!   state; deleted stays deleted.
//!
//! Orders in which a partial event (`organization.updated`) arrives before the
//! whole-state `organization.created` are the partial-event semantics of the existing
//! events, covered with them in `any_order.rs`; here the organization's permutations start
//! with its creation.

mod common;

use anineplus_schemas::TopicValue;
use anineplus_schemas::events::{
    AnimeData, AnimeState, AnimeStatus, CommentData, CommentDeleted, CommentModerated,
    CommentPosted, CommentStatus, Envelope, EpisodeData, EpisodeState, OrganizationCreated,
    OrganizationData, OrganizationState, UserData, UserDeleted, UserRole, UserState, UserUpdated,
    samples,
};
use anineplus_sync::{SUPPORTED, SearchSync};
use anineplus_testkit::{TestDatabase, unique};
use common::Harness;
use common::api::Api;
use serde_json::{Value, json};

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

/// Fields a tombstone may hold: nothing of the entity's own data.
const TOMBSTONE_FIELDS: [&str; 6] = [
    "id",
    "deleted",
    "aggregateVersion",
    "updatedAt",
    // Denormalised from the comment's anime, kept by the indexer's replace.
    "animeTitle",
    "animeTitleVersion",
];

/// One entity's events (versions 1..=n), re-keyed per permutation, and what its document
/// must hold once they are all indexed.
struct Case<D> {
    index: &'static str,
    events: Vec<Envelope<D>>,
    orders: Vec<Vec<usize>>,
    expect: fn(&Value) -> Result<(), String>,
}

impl<D: Clone> Case<D>
where
    Envelope<D>: TopicValue,
{
    /// Sends every order of the events, each under a fresh id; returns the ids.
    async fn send(&self, t: &Harness) -> Vec<(String, Vec<usize>)> {
        let mut sent = Vec::new();
        for order in &self.orders {
            let id = unique(self.index);
            for &i in order {
                let mut e = self.events[i].clone();
                e.aggregate_id = id.clone();
                t.send(&id, &e).await;
            }
            sent.push((id, order.clone()));
        }
        sent
    }

    /// Waits for each document to reach the highest version, then checks it.
    async fn check(&self, t: &Harness, sent: &[(String, Vec<usize>)], failures: &mut Vec<String>) {
        let last = self.events.len() as i64;
        for (id, order) in sent {
            let (_, source) = t.wait_doc(self.index, id, |v, _| v == last).await;
            if let Err(why) = (self.expect)(&source) {
                let types: Vec<&str> = order
                    .iter()
                    .map(|&i| self.events[i].event_type.as_str())
                    .collect();
                failures.push(format!(
                    "{} in order {types:?}: {why}; document {source}",
                    self.index
                ));
            }
        }
    }
}

fn tombstone(source: &Value) -> Result<(), String> {
    if source["deleted"] != json!(true) {
        return Err("not deleted".into());
    }
    let extra: Vec<&String> = source
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| !TOMBSTONE_FIELDS.contains(&k.as_str()))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!("the tombstone keeps {extra:?}"))
    }
}

fn equal(source: &Value, expected: Value) -> Result<(), String> {
    for (field, value) in expected.as_object().unwrap() {
        if &source[field] != value {
            return Err(format!("{field} is {}, not {value}", source[field]));
        }
    }
    Ok(())
}

fn user_case() -> Case<UserData> {
    let id = "u";
    let events = vec![
        samples::envelope(
            "user.created",
            id,
            1,
            UserData::UserCreated(UserState {
                user_id: id.into(),
                email: "leaving@example.com".into(),
                name: "Leaving".into(),
                role: UserRole::User,
                created_at: 1_764_000_000_000,
            }),
        ),
        samples::envelope(
            "user.updated",
            id,
            2,
            UserData::UserUpdated(UserUpdated {
                user_id: id.into(),
                email: "leaving@example.com".into(),
                name: "Renamed Before Leaving".into(),
                role: UserRole::Moderator,
            }),
        ),
        samples::envelope(
            "user.deleted",
            id,
            3,
            UserData::UserDeleted(UserDeleted { user_id: id.into() }),
        ),
    ];
    Case {
        index: "users",
        events,
        orders: permutations(3),
        expect: tombstone,
    }
}

fn comment_case() -> Case<CommentData> {
    let (id, anime) = ("c", "anime-of-comments");
    let events = vec![
        samples::envelope(
            "comment.created",
            id,
            1,
            CommentData::CommentCreated(CommentPosted {
                comment_id: id.into(),
                anime_id: anime.into(),
                episode_id: None,
                author_id: "u".into(),
                body: "regrettable".into(),
                status: CommentStatus::Visible,
                created_at: 1_764_000_000_000,
            }),
        ),
        samples::envelope(
            "comment.moderated",
            id,
            2,
            CommentData::CommentModerated(CommentModerated {
                comment_id: id.into(),
                anime_id: anime.into(),
                episode_id: None,
                status: CommentStatus::Hidden,
                reason: Some("spoiler".into()),
                moderated_by: "m".into(),
                moderated_at: 1_764_000_000_500,
            }),
        ),
        samples::envelope(
            "comment.deleted",
            id,
            3,
            CommentData::CommentDeleted(CommentDeleted {
                comment_id: id.into(),
                anime_id: anime.into(),
                episode_id: None,
            }),
        ),
    ];
    Case {
        index: "comments",
        events,
        orders: permutations(3),
        expect: tombstone,
    }
}

fn organization_case() -> Case<OrganizationData> {
    let id = "o";
    let renamed = |version: i64, name: &str, slug: &str| {
        samples::envelope(
            "organization.updated",
            id,
            version,
            OrganizationData::OrganizationUpdated(OrganizationState {
                organization_id: id.into(),
                name: name.into(),
                slug: slug.into(),
            }),
        )
    };
    let events = vec![
        samples::envelope(
            "organization.created",
            id,
            1,
            OrganizationData::OrganizationCreated(OrganizationCreated {
                organization_id: id.into(),
                name: "Studio".into(),
                slug: "studio".into(),
                owner_id: "owner".into(),
            }),
        ),
        renamed(2, "Studio Two", "studio-two"),
        renamed(3, "Studio Three", "studio-three"),
    ];
    // The creation first, then the renames in every order.
    let orders = permutations(2)
        .into_iter()
        .map(|p| {
            std::iter::once(0)
                .chain(p.into_iter().map(|i| i + 1))
                .collect()
        })
        .collect();
    Case {
        index: "organizations",
        events,
        orders,
        expect: |s| {
            equal(
                s,
                json!({
                    "name": "Studio Three", "slug": "studio-three", "ownerId": "owner",
                    "members": [{"userId": "owner", "role": "OWNER"}], "deleted": false,
                }),
            )
        },
    }
}

fn anime_case() -> Case<AnimeData> {
    let id = "a";
    let state = |synopsis: Option<&str>, year: Option<i32>, alternative: &[&str]| AnimeState {
        anime_id: id.into(),
        title: "Kino".into(),
        synopsis: synopsis.map(str::to_owned),
        genres: vec!["drama".into()],
        status: AnimeStatus::Finished,
        release_year: year,
        alternative_titles: alternative.iter().map(|t| (*t).to_owned()).collect(),
    };
    let events = vec![
        samples::envelope(
            "anime.created",
            id,
            1,
            AnimeData::AnimeCreated(state(
                Some("A traveller and a talking motorrad"),
                Some(2003),
                &["キノの旅"],
            )),
        ),
        samples::envelope(
            "anime.updated",
            id,
            2,
            AnimeData::AnimeUpdated(state(None, Some(2003), &["キノの旅", "Kino no Tabi"])),
        ),
        samples::envelope(
            "anime.updated",
            id,
            3,
            AnimeData::AnimeUpdated(state(None, None, &["Kino's Journey"])),
        ),
    ];
    Case {
        index: "anime",
        events,
        orders: permutations(3),
        expect: |s| {
            equal(
                s,
                json!({"title": "Kino", "synopsis": null, "releaseYear": null, "deleted": false,
                    "alternativeTitles": ["Kino's Journey"]}),
            )
        },
    }
}

fn episode_case() -> Case<EpisodeData> {
    let id = "e";
    // From JSON: the title is optional in the contract.
    let state = |title: Value, duration: Value| -> EpisodeState {
        serde_json::from_value(json!({
            "episodeId": id, "animeId": "anime-of-episodes", "number": 1, "title": title,
            "durationSeconds": duration, "airDate": null,
        }))
        .expect("an episode state with a null title")
    };
    let events = vec![
        samples::envelope(
            "episode.created",
            id,
            1,
            EpisodeData::EpisodeCreated(state(json!("Land of Visible Pain"), json!(1440))),
        ),
        samples::envelope(
            "episode.updated",
            id,
            2,
            EpisodeData::EpisodeUpdated(state(Value::Null, json!(1440))),
        ),
        samples::envelope(
            "episode.updated",
            id,
            3,
            EpisodeData::EpisodeUpdated(state(Value::Null, Value::Null)),
        ),
    ];
    Case {
        index: "episodes",
        events,
        orders: permutations(3),
        expect: |s| {
            equal(
                s,
                json!({"number": 1, "title": null, "durationSeconds": null, "deleted": false}),
            )
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_of_the_new_events_ends_at_the_highest_version() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;

    let users = user_case();
    let comments = comment_case();
    let organizations = organization_case();
    let anime = anime_case();
    let sent_users = users.send(&t).await;
    let sent_comments = comments.send(&t).await;
    let sent_orgs = organizations.send(&t).await;
    let sent_anime = anime.send(&t).await;
    let mut failures = Vec::new();
    users.check(&t, &sent_users, &mut failures).await;
    comments.check(&t, &sent_comments, &mut failures).await;
    organizations.check(&t, &sent_orgs, &mut failures).await;
    anime.check(&t, &sent_anime, &mut failures).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let episodes = episode_case();
    let sent_episodes = episodes.send(&t).await;
    episodes.check(&t, &sent_episodes, &mut failures).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    indexer.stop().await;
    t.cleanup().await;
}

/// A GraphQL field of `data` as a string.
fn field(data: &Value, path: &[&str]) -> String {
    let mut v = data;
    for p in path {
        v = &v[*p];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} in {data}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletions_renames_and_cleared_fields_reach_the_index_through_the_outbox() {
    let t = Harness::new().await;
    let db = TestDatabase::create("completeness").await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;
    let sign_up = "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }";
    let admin = api
        .gql(
            sign_up,
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "c-admin",
        )
        .await;
    let admin = field(&admin, &["signUp", "token"]);
    let leaving = api
        .gql(
            sign_up,
            json!({"i": {"email": "leaving@test.local", "name": "Leaving Soon", "password": "correct horse battery"}}),
            None,
            "c-user",
        )
        .await;
    let (token, user) = (
        field(&leaving, &["signUp", "token"]),
        field(&leaving, &["signUp", "user", "id"]),
    );
    let anime = api
        .gql(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
            json!({"i": {"title": "Kino's Journey", "synopsis": "A traveller", "genres": ["Drama"], "status": "FINISHED", "releaseYear": 2003}}),
            Some(&admin),
            "c-anime",
        )
        .await;
    let anime = field(&anime, &["createAnime", "id"]);
    let episode = api
        .gql(
            "mutation($a: ID!) { createEpisode(input: {animeId: $a, number: 1, title: \"Land of Visible Pain\", durationSeconds: 1440}) { id } }",
            json!({"a": anime}),
            Some(&admin),
            "c-episode",
        )
        .await;
    let episode = field(&episode, &["createEpisode", "id"]);
    let comment = api
        .gql(
            "mutation($a: ID!) { postComment(input: {animeId: $a, body: \"regrettable\"}) { id } }",
            json!({"a": anime}),
            Some(&token),
            "c-comment",
        )
        .await;
    let comment = field(&comment, &["postComment", "id"]);
    let org = api
        .gql(
            "mutation { createOrganization(input: {name: \"Studio\", slug: \"studio-kino\"}) { id } }",
            json!({}),
            Some(&token),
            "c-org",
        )
        .await;
    let org = field(&org, &["createOrganization", "id"]);
    t.wait_doc("comments", &comment, |v, _| v == 1).await;
    t.wait_doc("users", &user, |v, _| v == 1).await;

    api.gql(
        "mutation($id: ID!) { updateAnime(id: $id, input: {synopsis: null}) { version } }",
        json!({"id": anime}),
        Some(&admin),
        "c-clear-synopsis",
    )
    .await;
    api.gql(
        "mutation($id: ID!) { updateEpisode(id: $id, input: {title: null, durationSeconds: null}) { version } }",
        json!({"id": episode}),
        Some(&admin),
        "c-clear-title",
    )
    .await;
    api.gql(
        "mutation($id: ID!) { updateOrganization(id: $id, input: {name: \"Studio Kino\"}) { version } }",
        json!({"id": org}),
        Some(&token),
        "c-rename",
    )
    .await;
    api.gql(
        "mutation($id: ID!) { deleteComment(id: $id) }",
        json!({"id": comment}),
        Some(&token),
        "c-delete-comment",
    )
    .await;
    api.gql(
        "mutation { deleteAccount }",
        json!({}),
        Some(&token),
        "c-delete-account",
    )
    .await;

    // Its episode count comes from the episode topic, read in parallel with the anime's:
    // the anime's v2 can be indexed before its episode's creation is.
    let (_, a) = t
        .wait_doc("anime", &anime, |v, d| {
            v == 2 && d["episodeCount"] == json!(1)
        })
        .await;
    assert_eq!(a["synopsis"], Value::Null, "{a}");
    assert_eq!(a["title"], json!("Kino's Journey"));
    let (_, e) = t.wait_doc("episodes", &episode, |v, _| v == 2).await;
    assert_eq!(
        (&e["title"], &e["durationSeconds"]),
        (&Value::Null, &Value::Null),
        "{e}"
    );
    let (_, c) = t.wait_doc("comments", &comment, |v, _| v == 2).await;
    tombstone(&c).unwrap_or_else(|why| panic!("comment: {why}: {c}"));
    let (_, u) = t.wait_doc("users", &user, |v, _| v == 2).await;
    tombstone(&u).unwrap_or_else(|why| panic!("user: {why}: {u}"));
    assert!(!u.to_string().contains("Leaving"), "{u}");
    // Renamed (v2), then its owner left it (member_removed, v3).
    let (_, o) = t.wait_doc("organizations", &org, |v, _| v == 3).await;
    equal(
        &o,
        json!({"name": "Studio Kino", "slug": "studio-kino", "members": []}),
    )
    .unwrap_or_else(|why| panic!("organization: {why}: {o}"));
    // Nothing searchable mentions the deleted comment or user.
    assert!(
        t.search_live("comments", json!({"match": {"body": "regrettable"}}))
            .await
            .is_empty()
    );
    assert!(
        t.search_live("users", json!({"match": {"name": "Leaving"}}))
            .await
            .is_empty()
    );

    // `anineplus-search verify` agrees: deleted rows are tombstones, nothing drifted (once
    // the indexer caught up: what verify reports as missing or stale may be its lag, so a
    // drift must last 20 s to fail the test).
    let sync = SearchSync::connect(&db.url, &t.stack.search_url, &t.index_prefix)
        .await
        .unwrap();
    for index in SUPPORTED {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let drift = sync.verify(index).await.unwrap();
            if drift.in_sync() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "drift for 20 s: {drift:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.remove().await;
}
