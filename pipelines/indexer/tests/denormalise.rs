//! Denormalised fields on the real stack: the anime document's `episodeCount` and the
//! comments' `animeTitle` stay right whatever order the events of the two entities arrive
//! in, and redelivered or stale events change nothing.

mod common;

use anineplus_schemas::events::samples::envelope;
use anineplus_schemas::events::*;
use common::{Harness, anime};
use serde_json::json;

fn episode(id: &str, anime: &str, version: i64) -> Envelope<EpisodeData> {
    let state = EpisodeState {
        episode_id: id.into(),
        anime_id: anime.into(),
        number: version as i32,
        title: Some(format!("{id} v{version}")),
        duration_seconds: Some(1440),
        air_date: None,
    };
    let data = if version == 1 {
        EpisodeData::EpisodeCreated(state)
    } else {
        EpisodeData::EpisodeUpdated(state)
    };
    envelope("episode.updated", id, version, data)
}

fn episode_deleted(id: &str, anime: &str, version: i64) -> Envelope<EpisodeData> {
    let data = EpisodeData::EpisodeDeleted(EpisodeDeleted {
        episode_id: id.into(),
        anime_id: anime.into(),
    });
    envelope("episode.deleted", id, version, data)
}

fn comment(id: &str, anime: &str) -> Envelope<CommentData> {
    let data = CommentData::CommentCreated(CommentPosted {
        comment_id: id.into(),
        anime_id: anime.into(),
        episode_id: None,
        author_id: "u1".into(),
        body: format!("comment {id}"),
        status: CommentStatus::Visible,
        created_at: 1_764_000_000_000,
    });
    envelope("comment.created", id, 1, data)
}

fn moderated(id: &str, anime: &str) -> Envelope<CommentData> {
    let data = CommentData::CommentModerated(CommentModerated {
        comment_id: id.into(),
        anime_id: anime.into(),
        episode_id: None,
        status: CommentStatus::Hidden,
        reason: Some("spoiler".into()),
        moderated_by: "u2".into(),
        moderated_at: 1_764_000_100_000,
    });
    envelope("comment.moderated", id, 2, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn episode_counts_and_anime_titles_follow_their_sources_in_any_order() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;

    // An episode before its anime: a placeholder that search does not show.
    t.send("e1", &episode("e1", "a1", 1)).await;
    let (_, placeholder) = t
        .wait_doc("anime", "a1", |_, s| s["episodeCount"] == json!(1))
        .await;
    assert_eq!(placeholder["deleted"], json!(true), "{placeholder}");
    assert_eq!(placeholder["aggregateVersion"], json!(0), "{placeholder}");
    assert!(
        t.search_live("anime", json!({"ids": {"values": ["a1"]}}))
            .await
            .is_empty(),
        "a placeholder is not searchable"
    );

    // A comment before its anime: no title yet.
    t.send("c0", &comment("c0", "a1")).await;
    t.wait_doc("comments", "c0", |v, _| v == 1).await;

    // The anime arrives: it keeps the count; the early comment gets the title.
    t.send("a1", &anime("a1", 1, "Frieren")).await;
    let (_, a) = t.wait_doc("anime", "a1", |v, _| v == 1).await;
    assert_eq!(a["episodeCount"], json!(1), "{a}");
    assert_eq!(a["deleted"], json!(false), "{a}");
    t.wait_doc("comments", "c0", |_, s| s["animeTitle"] == json!("Frieren"))
        .await;

    // More episodes, an update, a delete, then a duplicate and a stale event of each.
    for e in [
        episode("e2", "a1", 1),
        episode("e3", "a1", 1),
        episode("e2", "a1", 2),
        episode_deleted("e3", "a1", 2),
        episode("e2", "a1", 2),
        episode("e3", "a1", 1),
    ] {
        t.send(&e.aggregate_id.clone(), &e).await;
    }
    t.wait_doc("episodes", "e3", |v, s| {
        v == 2 && s["deleted"] == json!(true)
    })
    .await;
    // A comment after its anime gets the title at once; a moderation keeps it.
    t.send("c1", &comment("c1", "a1")).await;
    t.send("c1", &moderated("c1", "a1")).await;
    let (_, c1) = t
        .wait_doc("comments", "c1", |v, s| {
            v == 2 && s["animeTitle"] == json!("Frieren")
        })
        .await;
    assert_eq!(c1["status"], json!("HIDDEN"), "{c1}");
    assert_eq!(c1["animeTitleVersion"], json!(1), "{c1}");

    // A rename reaches every comment; a stale, older anime event changes nothing.
    t.send("a1", &anime("a1", 2, "Frieren: Beyond Journey's End"))
        .await;
    t.send("a1", &anime("a1", 1, "Frieren")).await;
    for c in ["c0", "c1"] {
        t.wait_doc("comments", c, |_, s| {
            s["animeTitle"] == json!("Frieren: Beyond Journey's End")
                && s["animeTitleVersion"] == json!(2)
        })
        .await;
    }
    // A marker event after the stale one: once it is indexed, the stale one was seen.
    t.send("a1", &anime("a1", 3, "Frieren: Beyond Journey's End"))
        .await;
    let (_, a) = t.wait_doc("anime", "a1", |v, _| v == 3).await;
    assert_eq!(
        a["episodeCount"],
        json!(2),
        "e1 and e2 live, e3 deleted: {a}"
    );
    assert_eq!(a["title"], json!("Frieren: Beyond Journey's End"));
    for c in ["c0", "c1"] {
        let (_, s) = t.doc("comments", c).await.unwrap();
        assert_eq!(
            s["animeTitle"],
            json!("Frieren: Beyond Journey's End"),
            "{c}: {s}"
        );
    }

    // Search uses the denormalised fields: comments by their anime's title, anime by count.
    let hits = t
        .search_live("comments", json!({"match": {"animeTitle": "beyond"}}))
        .await;
    let mut ids: Vec<_> = hits.iter().map(|h| h["_id"].clone()).collect();
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, vec![json!("c0"), json!("c1")], "{hits:?}");
    let hits = t
        .search_live("anime", json!({"range": {"episodeCount": {"gte": 2}}}))
        .await;
    assert_eq!(hits.len(), 1, "{hits:?}");

    indexer.stop().await;
    t.cleanup().await;
}
