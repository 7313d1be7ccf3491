//! The write path end to end: mutation → rows → outbox → Kafka, read back by an independent
//! consumer that decodes through the registry.

mod common;

use std::time::Duration;

use anineplus_schemas::events::{AnimeData, CommentData};
use anineplus_schemas::{Envelope, Topic};
use common::{TestApi, read_records};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_become_ordered_events_with_their_correlation_id() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let cid = "it-correlation-42";

    let reply = api
        .gql_with(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id version title alternativeTitles } }",
            json!({"i": {"title": "Frieren", "synopsis": "After the journey", "genres": ["Fantasy"], "status": "AIRING", "releaseYear": 2023,
                "alternativeTitles": ["葬送のフリーレン", " Frieren: Beyond Journey's End ", "葬送のフリーレン"]}}),
            Some(&admin),
            &[("x-correlation-id", cid)],
        )
        .await;
    assert_eq!(reply.headers["x-correlation-id"], cid);
    let anime = reply.data()["createAnime"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reply.data()["createAnime"]["version"], 1);
    let alternative = vec!["葬送のフリーレン", "Frieren: Beyond Journey's End"];
    assert_eq!(
        reply.data()["createAnime"]["alternativeTitles"],
        json!(alternative),
        "trimmed, deduplicated, in order"
    );

    for (i, title) in ["Frieren 2", "Frieren 3"].iter().enumerate() {
        let reply = api
            .gql_with(
                "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { version title } }",
                json!({"id": anime, "i": {"title": title}}),
                Some(&admin),
                &[("x-correlation-id", cid)],
            )
            .await;
        assert_eq!(reply.data()["updateAnime"]["version"], i as i64 + 2);
    }
    let reply = api
        .gql(
            "mutation($i: PostCommentInput!) { postComment(input: $i) { id body status } }",
            json!({"i": {"animeId": anime, "body": "great"}}),
            Some(&admin),
        )
        .await;
    let comment = reply.data()["postComment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rows: the anime at version 3, and one outbox row per change (user, 3 anime, comment).
    let version: i64 = sqlx::query_scalar("SELECT version FROM anime WHERE id = $1::uuid")
        .bind(&anime)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(version, 3);
    assert_eq!(api.outbox_count().await, 5);
    api.wait_published(Duration::from_secs(30)).await;

    let records = read_records::<Envelope<AnimeData>>(
        &api.stack,
        &api.topic(Topic::Anime),
        3,
        Duration::from_secs(60),
    )
    .await;
    let versions: Vec<i64> = records.iter().map(|r| r.value.aggregate_version).collect();
    assert_eq!(versions, vec![1, 2, 3], "in commit order");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.key, anime);
        assert_eq!(record.value.aggregate_id, anime);
        assert_eq!(record.value.source, "anineplus-api");
        assert_eq!(record.value.correlation_id.as_deref(), Some(cid));
        assert_eq!(record.header("correlation-id"), Some(cid));
        let expected = if i == 0 {
            "anime.created"
        } else {
            "anime.updated"
        };
        assert_eq!(record.value.event_type, expected);
        assert_eq!(record.header("event-type"), Some(expected));
        assert_eq!(record.partition, records[0].partition);
    }
    match &records[0].value.data {
        AnimeData::AnimeCreated(state) => assert_eq!(state.alternative_titles, alternative),
        other => panic!("unexpected {other:?}"),
    }
    match &records[2].value.data {
        AnimeData::AnimeUpdated(state) => {
            assert_eq!(state.title, "Frieren 3");
            assert_eq!(state.genres, vec!["fantasy"]);
            assert_eq!(state.alternative_titles, alternative, "kept by updates");
        }
        other => panic!("unexpected {other:?}"),
    }

    let comments = read_records::<Envelope<CommentData>>(
        &api.stack,
        &api.topic(Topic::Comment),
        1,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(comments[0].key, comment);
    assert!(
        matches!(&comments[0].value.data, CommentData::CommentCreated(c) if c.body == "great" && c.anime_id == anime)
    );

    // The relay marked everything; metrics show it.
    let metrics = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("api_outbox_relay_published_total 5"),
        "{metrics}"
    );
    assert!(metrics.contains("api_outbox_backlog 0"), "{metrics}");
    assert!(
        metrics.contains("api_graphql_requests_total{operation=\"createAnime\"} 1"),
        "{metrics}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_reads_and_cache_invalidation() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let anime = api.create_anime(&admin, "Mushishi").await;
    let query =
        "query($id: ID!) { anime(id: $id) { title episodes { number title anime { title } } } }";
    let reply = api.gql(query, json!({"id": anime}), None).await;
    assert_eq!(reply.data()["anime"]["episodes"], json!([]));
    let reply = api
        .gql(
            "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { id number } }",
            json!({"i": {"animeId": anime, "number": 1, "title": "The Green Seat", "airDate": "2005-10-23"}}),
            Some(&admin),
        )
        .await;
    reply.data();
    // Same number again: CONFLICT, and nothing written.
    let before = api.outbox_count().await;
    api.gql(
        "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { id } }",
        json!({"i": {"animeId": anime, "number": 1, "title": "dup"}}),
        Some(&admin),
    )
    .await
    .assert_code("CONFLICT");
    assert_eq!(api.outbox_count().await, before);

    // Read after write: the cached (empty) episode list and anime were invalidated.
    api.gql(
        "mutation($id: ID!) { updateAnime(id: $id, input: {title: \"Mushi-shi\"}) { id } }",
        json!({"id": anime}),
        Some(&admin),
    )
    .await
    .data();
    let reply = api.gql(query, json!({"id": anime}), None).await;
    let data = reply.data();
    assert_eq!(data["anime"]["title"], "Mushi-shi");
    assert_eq!(data["anime"]["episodes"][0]["number"], 1);
    assert_eq!(data["anime"]["episodes"][0]["anime"]["title"], "Mushi-shi");

    // Search (PostgreSQL backend), Relay shape.
    let reply = api
        .gql(
            "{ searchAnime(query: \"mushi\", first: 1) { totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
            json!({}),
            None,
        )
        .await;
    let data = reply.data();
    assert_eq!(data["searchAnime"]["totalCount"], 1);
    assert_eq!(
        data["searchAnime"]["edges"][0]["node"]["id"],
        anime.as_str()
    );
    assert_eq!(data["searchAnime"]["pageInfo"]["hasNextPage"], false);

    // Delete: gone from reads.
    api.gql(
        "mutation($id: ID!) { deleteAnime(id: $id) }",
        json!({"id": anime}),
        Some(&admin),
    )
    .await
    .data();
    let reply = api.gql(query, json!({"id": anime}), None).await;
    assert_eq!(reply.data()["anime"], json!(null));
    // Comments need a live anime (and an episode of that anime).
    let post = "mutation($a: ID!, $e: ID) { postComment(input: {animeId: $a, episodeId: $e, body: \"hi\"}) { id } }";
    let comment_events = "SELECT count(*) FROM outbox WHERE topic = 'comment'";
    let events_before: i64 = sqlx::query_scalar(comment_events)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    api.gql(post, json!({"a": anime}), Some(&admin))
        .await
        .assert_code("NOT_FOUND");
    let other = api.create_anime(&admin, "Other").await;
    let episode: String = sqlx::query_scalar("SELECT id::text FROM episodes LIMIT 1")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    api.gql(post, json!({"a": other, "e": episode}), Some(&admin))
        .await
        .assert_code("NOT_FOUND");
    // A refused comment appends no event (the comment and its event are one statement).
    let events_after: i64 = sqlx::query_scalar(comment_events)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(
        events_after, events_before,
        "a refused comment appended an event"
    );
    api.gql(post, json!({"a": other}), Some(&admin))
        .await
        .data();
    api.stop().await;
}

/// `updateAnime`'s `alternativeTitles` replaces the list, `[]` empties it, `null` is refused;
/// reads (the cache included) show the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternative_titles_are_replaced_emptied_and_never_null() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let anime = api.create_anime(&admin, "Mushishi").await;
    let read = "query($id: ID!) { anime(id: $id) { alternativeTitles } }";
    let reply = api.gql(read, json!({"id": anime}), None).await;
    assert_eq!(reply.data()["anime"]["alternativeTitles"], json!([]));
    let update = "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { alternativeTitles } }";
    for list in [json!(["蟲師", "Mushi-shi"]), json!([])] {
        let reply = api
            .gql(
                update,
                json!({"id": anime, "i": {"alternativeTitles": list}}),
                Some(&admin),
            )
            .await;
        assert_eq!(reply.data()["updateAnime"]["alternativeTitles"], list);
        let reply = api.gql(read, json!({"id": anime}), None).await;
        assert_eq!(reply.data()["anime"]["alternativeTitles"], list);
    }
    api.gql(
        update,
        json!({"id": anime, "i": {"alternativeTitles": null}}),
        Some(&admin),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    api.stop().await;
}
