//! Any order of an entity's events gives the same document: the one at the highest
//! version's state. A retry topic, a replay from the dead-letter topic or a second relay
//! make late and reordered events real: a partial event (a member added, a user renamed)
//! may be indexed before the whole-state event it follows, and must not be undone by it.
//!
//! Table-driven: each [`Entity`] lists its events in version order (1, 2, ...) for a given
//! id, and what the final document holds. For every permutation of those events, a
//! document of its own (id `<entity>-<n>`) gets them in that order through Kafka and the
//! indexer on the real stack; each must end at the last version, equal (but its id) to the
//! document of the in-order sequence, and pass the entity's check. To cover a new event
//! type, add it to its entity's list (or a new entity to [`entities`]).

mod common;

use anineplus_schemas::Topic;
use anineplus_schemas::events::*;
use common::Harness;
use serde_json::{Value, json};

/// One event of any topic.
#[derive(Debug, Clone)]
enum Event {
    User(Envelope<UserData>),
    Organization(Envelope<OrganizationData>),
    Anime(Envelope<AnimeData>),
    Episode(Envelope<EpisodeData>),
    Comment(Envelope<CommentData>),
}

impl Event {
    async fn send(&self, t: &Harness, key: &str) {
        match self {
            Event::User(e) => t.send(key, e).await,
            Event::Organization(e) => t.send(key, e).await,
            Event::Anime(e) => t.send(key, e).await,
            Event::Episode(e) => t.send(key, e).await,
            Event::Comment(e) => t.send(key, e).await,
        }
    }
}

/// An entity of the table.
struct Entity {
    /// Its name: the index (`users`, ...) and the prefix of its documents' ids.
    name: &'static str,
    /// The index its documents live in.
    index: &'static str,
    /// Its events for entity `id`, in version order: event `i` has version `i + 1`.
    events: fn(&str) -> Vec<Event>,
    /// What the final document holds.
    check: fn(&Value),
}

/// Event `data` of `id` at `version`, timestamped by its version (so `updatedAt` shows
/// which event a document's state is from).
fn at<T>(event_type: &str, id: &str, version: i64, data: T) -> Envelope<T> {
    let mut e = samples::envelope(event_type, id, version, data);
    e.timestamp = 1_764_000_000_000 + version * 1000;
    e
}

fn entities() -> Vec<Entity> {
    vec![
        Entity {
            name: "users",
            index: "users",
            events: |id| {
                vec![
                    Event::User(at(
                        "user.created",
                        id,
                        1,
                        UserData::UserCreated(UserState {
                            user_id: id.into(),
                            email: "ann@example.com".into(),
                            name: "Ann".into(),
                            role: UserRole::User,
                            created_at: 1_700_000_000_000,
                        }),
                    )),
                    Event::User(at(
                        "user.updated",
                        id,
                        2,
                        UserData::UserUpdated(UserUpdated {
                            user_id: id.into(),
                            email: "anne@example.com".into(),
                            name: "Anne".into(),
                            role: UserRole::Admin,
                        }),
                    )),
                ]
            },
            check: |doc| {
                assert_eq!(doc["name"], json!("Anne"), "{doc}");
                assert_eq!(doc["role"], json!("ADMIN"), "{doc}");
                assert_eq!(doc["createdAt"], json!(1_700_000_000_000_i64), "{doc}");
                assert_eq!(doc["deleted"], json!(false), "{doc}");
                assert!(!doc.to_string().contains('@'), "no email: {doc}");
            },
        },
        Entity {
            name: "organizations",
            index: "organizations",
            events: |id| {
                let member = |user: &str, version: i64| {
                    Event::Organization(at(
                        "organization.member_added",
                        id,
                        version,
                        OrganizationData::OrganizationMemberAdded(OrganizationMember {
                            organization_id: id.into(),
                            user_id: user.into(),
                            member_role: "MEMBER".into(),
                        }),
                    ))
                };
                vec![
                    Event::Organization(at(
                        "organization.created",
                        id,
                        1,
                        OrganizationData::OrganizationCreated(OrganizationCreated {
                            organization_id: id.into(),
                            name: "Studio".into(),
                            slug: "studio".into(),
                            owner_id: "u-owner".into(),
                        }),
                    )),
                    member("u-1", 2),
                    member("u-2", 3),
                    Event::Organization(at(
                        "organization.member_removed",
                        id,
                        4,
                        OrganizationData::OrganizationMemberRemoved(OrganizationMemberRemoved {
                            organization_id: id.into(),
                            user_id: "u-1".into(),
                        }),
                    )),
                    Event::Organization(at(
                        "organization.updated",
                        id,
                        5,
                        OrganizationData::OrganizationUpdated(OrganizationState {
                            organization_id: id.into(),
                            name: "Studio Renamed".into(),
                            slug: "renamed".into(),
                        }),
                    )),
                ]
            },
            check: |doc| {
                assert_eq!(doc["name"], json!("Studio Renamed"), "{doc}");
                assert_eq!(doc["ownerId"], json!("u-owner"), "{doc}");
                assert_eq!(
                    doc["members"],
                    json!([
                        {"userId": "u-owner", "role": "OWNER"},
                        {"userId": "u-2", "role": "MEMBER"},
                    ]),
                    "{doc}"
                );
            },
        },
        Entity {
            name: "comments",
            index: "comments",
            events: |id| {
                let moderated = |version: i64, status: CommentStatus, reason: &str| {
                    Event::Comment(at(
                        "comment.moderated",
                        id,
                        version,
                        CommentData::CommentModerated(CommentModerated {
                            comment_id: id.into(),
                            anime_id: "any-order-anime".into(),
                            episode_id: None,
                            status,
                            reason: Some(reason.into()),
                            moderated_by: "u-mod".into(),
                            moderated_at: 1_764_000_000_000 + version,
                        }),
                    ))
                };
                vec![
                    Event::Comment(at(
                        "comment.created",
                        id,
                        1,
                        CommentData::CommentCreated(CommentPosted {
                            comment_id: id.into(),
                            anime_id: "any-order-anime".into(),
                            episode_id: None,
                            author_id: "u-author".into(),
                            body: "first!".into(),
                            status: CommentStatus::Visible,
                            created_at: 1_700_000_000_000,
                        }),
                    )),
                    moderated(2, CommentStatus::Hidden, "spoilers"),
                    moderated(3, CommentStatus::Visible, "appeal granted"),
                ]
            },
            check: |doc| {
                assert_eq!(doc["body"], json!("first!"), "{doc}");
                assert_eq!(doc["authorId"], json!("u-author"), "{doc}");
                assert_eq!(doc["status"], json!("VISIBLE"), "{doc}");
                assert_eq!(doc["moderationReason"], json!("appeal granted"), "{doc}");
            },
        },
        Entity {
            name: "anime",
            index: "anime",
            events: |id| {
                let state = |title: &str| AnimeState {
                    anime_id: id.into(),
                    title: title.into(),
                    synopsis: None,
                    genres: vec![],
                    status: AnimeStatus::Airing,
                    release_year: Some(2020),
                    alternative_titles: vec![],
                };
                vec![
                    Event::Anime(at(
                        "anime.created",
                        id,
                        1,
                        AnimeData::AnimeCreated(state("One")),
                    )),
                    Event::Anime(at(
                        "anime.updated",
                        id,
                        2,
                        AnimeData::AnimeUpdated(state("Two")),
                    )),
                    Event::Anime(at(
                        "anime.updated",
                        id,
                        3,
                        AnimeData::AnimeUpdated(state("Three")),
                    )),
                ]
            },
            check: |doc| assert_eq!(doc["title"], json!("Three"), "{doc}"),
        },
        Entity {
            name: "anime-deleted",
            index: "anime",
            events: |id| {
                let state = AnimeState {
                    anime_id: id.into(),
                    title: "Gone".into(),
                    synopsis: None,
                    genres: vec![],
                    status: AnimeStatus::Airing,
                    release_year: None,
                    alternative_titles: vec![],
                };
                vec![
                    Event::Anime(at(
                        "anime.created",
                        id,
                        1,
                        AnimeData::AnimeCreated(state.clone()),
                    )),
                    Event::Anime(at("anime.updated", id, 2, AnimeData::AnimeUpdated(state))),
                    Event::Anime(at(
                        "anime.deleted",
                        id,
                        3,
                        AnimeData::AnimeDeleted(AnimeDeleted {
                            anime_id: id.into(),
                        }),
                    )),
                ]
            },
            check: |doc| assert_eq!(doc["deleted"], json!(true), "{doc}"),
        },
        Entity {
            name: "episodes",
            index: "episodes",
            events: |id| {
                let state = |title: &str| EpisodeState {
                    episode_id: id.into(),
                    anime_id: "any-order-anime".into(),
                    number: 1,
                    title: Some(title.into()),
                    duration_seconds: Some(1440),
                    air_date: None,
                };
                vec![
                    Event::Episode(at(
                        "episode.created",
                        id,
                        1,
                        EpisodeData::EpisodeCreated(state("Pilot")),
                    )),
                    Event::Episode(at(
                        "episode.updated",
                        id,
                        2,
                        EpisodeData::EpisodeUpdated(state("Pilot (recut)")),
                    )),
                ]
            },
            check: |doc| assert_eq!(doc["title"], json!("Pilot (recut)"), "{doc}"),
        },
    ]
}

/// Every permutation of `0..n`, the identity first.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in (0..=rest.len()).rev() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.windows(2).any(|w| w[0] > w[1]));
    out
}

/// Document `id` of `index` once it satisfies `ok`, or as it is after 15 s (a document
/// left at another state is what this test is about: it is reported, not waited for).
async fn settled(t: &Harness, index: &str, id: &str, ok: impl Fn(i64, &Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let doc = t.doc(index, id).await;
        if let Some((v, source)) = &doc
            && (ok(*v, source) || tokio::time::Instant::now() > deadline)
        {
            return source.clone();
        }
        if doc.is_none() && tokio::time::Instant::now() > deadline {
            return Value::Null;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `doc` without its id (the only field that differs between permutations).
fn comparable(mut doc: Value) -> Value {
    if let Some(fields) = doc.as_object_mut() {
        fields.remove("id");
    }
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_entity_ends_at_its_highest_version_in_any_order_of_its_events() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    let table = entities();
    let mut expected = Vec::new();
    for entity in &table {
        let n = (entity.events)("x").len();
        let orders = permutations(n);
        for (k, order) in orders.iter().enumerate() {
            let id = format!("{}-{k}", entity.name);
            let events = (entity.events)(&id);
            for &i in order {
                events[i].send(&t, &id).await;
            }
        }
        expected.push((entity, n as i64, orders));
    }
    // Items of one batch go in concurrent bulk requests: writes of one document that race
    // get a 409 and come back through the in-place retries or the retry topic (1 s), in
    // yet another order. Once every source record is committed, give those a moment.
    for topic in [
        Topic::User,
        Topic::Organization,
        Topic::Comment,
        Topic::Anime,
        Topic::Episode,
    ] {
        t.wait_committed(&t.topic(topic)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut failures = Vec::new();
    for (entity, last, orders) in expected {
        let mut in_order = None;
        for (k, order) in orders.iter().enumerate() {
            let id = format!("{}-{k}", entity.name);
            if k == 0 {
                let doc = settled(&t, entity.index, &id, |v, _| v >= last).await;
                (entity.check)(&doc);
                in_order = Some(comparable(doc));
                continue;
            }
            let expected = in_order.clone().unwrap();
            let doc = settled(&t, entity.index, &id, |_, doc| {
                comparable(doc.clone()) == expected
            })
            .await;
            let got = comparable(doc);
            if Some(&got) != in_order.as_ref() {
                let order: Vec<i64> = order.iter().map(|i| *i as i64 + 1).collect();
                failures.push(format!(
                    "{} versions {order:?}: {got}\n  in order: {}",
                    entity.name,
                    in_order.as_ref().unwrap()
                ));
            }
        }
        eprintln!("{}: {} orders checked", entity.name, orders.len());
    }
    let total: usize = table
        .iter()
        .map(|e| permutations((e.events)("x").len()).len())
        .sum();
    eprintln!(
        "{} of {total} orders differ from the in-order document",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    indexer.stop().await;
    t.cleanup().await;
}
