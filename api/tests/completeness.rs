//! The events the schemas promise, produced by mutations: `comment.deleted`
//! (`deleteComment`), `user.deleted` (`deleteAccount`, `deleteUser`),
//! `organization.updated` (`updateOrganization`), and optional fields cleared to null
//! (`updateAnime`, `updateEpisode`). Each on the real stack: who may, what the rows hold
//! afterwards (a deleted user's personal data is gone from PostgreSQL), and the outbox row
//! of the right type, read back from Kafka through the registry.

mod common;

use std::time::Duration;

use anineplus_schemas::events::{
    AnimeData, CommentData, EpisodeData, OrganizationData, SubscriptionData, UserData,
};
use anineplus_schemas::{Envelope, Topic};
use common::{TestApi, read_until};
use serde_json::{Value, json};

/// `(event_type, aggregate_version, payload.data)` of the outbox rows of `aggregate`, in order.
async fn outbox_of(api: &TestApi, aggregate: &str) -> Vec<(String, i64, Value)> {
    let rows: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT event_type, aggregate_version, payload FROM outbox WHERE aggregate_id = $1 ORDER BY id",
    )
    .bind(aggregate)
    .fetch_all(&api.pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(t, v, p)| (t, v, p["data"].clone()))
        .collect()
}

fn types(rows: &[(String, i64, Value)]) -> Vec<&str> {
    rows.iter().map(|(t, _, _)| t.as_str()).collect()
}

async fn post_comment(api: &TestApi, token: &str, anime: &str, body: &str) -> String {
    let reply = api
        .gql(
            "mutation($i: PostCommentInput!) { postComment(input: $i) { id } }",
            json!({"i": {"animeId": anime, "body": body}}),
            Some(token),
        )
        .await;
    reply.data()["postComment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authors_delete_their_comments_and_moderators_any_as_comment_deleted() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let anime = api.create_anime(&admin, "Mushishi").await;
    let (author, _) = api.user().await;
    let (other, _) = api.user().await;
    let mine = post_comment(&api, &author, &anime, "mine").await;
    let theirs = post_comment(&api, &other, &anime, "theirs").await;

    // Nobody else deletes it: anonymous, another user.
    api.gql(DELETE_COMMENT, json!({"id": mine}), None)
        .await
        .assert_code("UNAUTHENTICATED");
    api.gql(DELETE_COMMENT, json!({"id": mine}), Some(&other))
        .await
        .assert_code("FORBIDDEN");
    assert_eq!(types(&outbox_of(&api, &mine).await), ["comment.created"]);

    // Its author does; the comment leaves the lists and the body leaves the row.
    let reply = api
        .gql(DELETE_COMMENT, json!({"id": mine}), Some(&author))
        .await;
    assert_eq!(reply.data()["deleteComment"], json!(true));
    api.gql(DELETE_COMMENT, json!({"id": mine}), Some(&author))
        .await
        .assert_code("NOT_FOUND");
    let rows = outbox_of(&api, &mine).await;
    assert_eq!(types(&rows), ["comment.created", "comment.deleted"]);
    assert_eq!(rows[1].1, 2, "the delete is the row's next version");
    assert_eq!(rows[1].2["CommentDeleted"]["animeId"], json!(anime));
    let (body, deleted): (String, bool) =
        sqlx::query_as("SELECT body, deleted_at IS NOT NULL FROM comments WHERE id = $1::uuid")
            .bind(&mine)
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!((body.as_str(), deleted), ("", true));
    let list = api
        .gql(
            "query($a: ID!) { comments(animeId: $a) { totalCount edges { node { id } } } }",
            json!({"a": anime}),
            Some(&admin),
        )
        .await;
    assert_eq!(list.data()["comments"]["totalCount"], json!(1), "{list:?}");
    assert_eq!(
        list.data()["comments"]["edges"][0]["node"]["id"],
        json!(theirs)
    );
    // A deleted comment is not moderated any more.
    api.gql(
        "mutation($id: ID!) { moderateComment(id: $id, status: HIDDEN) { id } }",
        json!({"id": mine}),
        Some(&admin),
    )
    .await
    .assert_code("NOT_FOUND");

    // A moderator (here an admin) deletes anyone's.
    let reply = api
        .gql(DELETE_COMMENT, json!({"id": theirs}), Some(&admin))
        .await;
    assert_eq!(reply.data()["deleteComment"], json!(true));
    assert_eq!(
        types(&outbox_of(&api, &theirs).await),
        ["comment.created", "comment.deleted"]
    );

    api.wait_published(Duration::from_secs(30)).await;
    let records = read_until::<Envelope<CommentData>>(
        &api.stack,
        &api.topic(Topic::Comment),
        Duration::from_secs(60),
        |r| {
            r.iter()
                .filter(|r| r.value.event_type == "comment.deleted")
                .count()
                == 2
        },
    )
    .await;
    let deleted: Vec<_> = records
        .iter()
        .filter(|r| matches!(r.value.data, CommentData::CommentDeleted(_)))
        .collect();
    // Two comments, two keys: their partitions are read in no set order.
    let own = deleted
        .iter()
        .find(|r| r.key == mine)
        .expect("the author's comment.deleted is on the topic, keyed by the comment id");
    assert_eq!(own.header("event-type"), Some("comment.deleted"));
    api.stop().await;
}

const DELETE_ACCOUNT: &str = "mutation { deleteAccount }";
const DELETE_USER: &str = "mutation($id: ID!) { deleteUser(id: $id) }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_leaves_no_personal_data_and_keeps_its_comments_authorless() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let anime = api.create_anime(&admin, "Natsume").await;
    let email = format!("{}@test.local", anineplus_testkit::unique("leaving"));
    let (token, me) = api.sign_up(&email).await;
    let comment = post_comment(&api, &token, &anime, "still worth reading").await;
    // Owner of one organization, member of another.
    let own = api.create_organization(&token, "Mine", "mine-org").await;
    let club = api.create_organization(&admin, "Club", "the-club").await;
    api.gql(
        "mutation($o: ID!, $u: ID!) { addMember(input: {organizationId: $o, userId: $u}) { id } }",
        json!({"o": club, "u": me}),
        Some(&admin),
    )
    .await
    .data();
    let sub = api
        .gql(
            "mutation { subscribe(plan: BASIC) { id } }",
            json!({}),
            Some(&token),
        )
        .await;
    let sub = sub.data()["subscribe"]["id"].as_str().unwrap().to_owned();

    // Anonymous callers cannot; the user can.
    api.gql(DELETE_ACCOUNT, json!({}), None)
        .await
        .assert_code("UNAUTHENTICATED");
    let reply = api.gql(DELETE_ACCOUNT, json!({}), Some(&token)).await;
    assert_eq!(reply.data()["deleteAccount"], json!(true));

    // PostgreSQL keeps the id and version, nothing personal.
    let row: (Option<String>, Option<String>, Option<String>, bool, i64) = sqlx::query_as(
        "SELECT email, name, password_hash, deleted_at IS NOT NULL, version FROM users WHERE id = $1::uuid",
    )
    .bind(&me)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(row, (None, None, None, true, 2));
    let users = outbox_of(&api, &me).await;
    assert_eq!(types(&users), ["user.created", "user.deleted"]);
    assert_eq!(users[1].1, 2);
    assert!(
        !users[1].2.to_string().contains(&email),
        "the delete carries no email: {}",
        users[1].2
    );

    // Gone for the API: no login, no user, the old token acts no more.
    let login = api
        .gql(
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({"i": {"email": email, "password": "correct horse battery"}}),
            None,
        )
        .await;
    login.assert_code("UNAUTHENTICATED");
    let user = api
        .gql(
            "query($id: ID!) { user(id: $id) { id } }",
            json!({"id": me}),
            Some(&admin),
        )
        .await;
    assert_eq!(user.data()["user"], Value::Null);
    api.gql(
        "mutation($i: PostCommentInput!) { postComment(input: $i) { id } }",
        json!({"i": {"animeId": anime, "body": "ghost"}}),
        Some(&token),
    )
    .await
    .assert_code("UNAUTHENTICATED");
    api.gql(DELETE_ACCOUNT, json!({}), Some(&token))
        .await
        .assert_code("UNAUTHENTICATED");

    // Comments stay, their author shown as deleted (null).
    let list = api
        .gql(
            "query($a: ID!) { comments(animeId: $a) { edges { node { id body author { id } } } } }",
            json!({"a": anime}),
            None,
        )
        .await;
    let node = &list.data()["comments"]["edges"][0]["node"];
    assert_eq!(node["id"], json!(comment));
    assert_eq!(node["body"], json!("still worth reading"));
    assert_eq!(node["author"], Value::Null);
    assert_eq!(types(&outbox_of(&api, &comment).await), ["comment.created"]);

    // Memberships end (member_removed on each organization), owned organizations stay.
    for org in [&own, &club] {
        let rows = outbox_of(&api, org).await;
        let last = rows.last().unwrap();
        assert_eq!(last.0, "organization.member_removed", "{rows:?}");
        assert_eq!(last.2["OrganizationMemberRemoved"]["userId"], json!(me));
        let members = api
            .gql(
                "query($id: ID!) { organization(id: $id) { owner { id } members { user { id } } } }",
                json!({"id": org}),
                Some(&admin),
            )
            .await;
        let members = &members.data()["organization"]["members"];
        assert!(
            !members.to_string().contains(&me),
            "{org}: {members} still lists the deleted user"
        );
    }
    // The running subscription is cancelled.
    let subs = outbox_of(&api, &sub).await;
    assert_eq!(
        types(&subs),
        ["subscription.created", "subscription.cancelled"]
    );

    api.wait_published(Duration::from_secs(30)).await;
    let records = read_until::<Envelope<UserData>>(
        &api.stack,
        &api.topic(Topic::User),
        Duration::from_secs(60),
        |r| r.iter().any(|r| r.value.event_type == "user.deleted"),
    )
    .await;
    let deleted = records
        .iter()
        .find(|r| r.value.event_type == "user.deleted")
        .unwrap();
    assert_eq!(deleted.key, me);
    assert_eq!(deleted.value.aggregate_version, 2);
    assert!(matches!(&deleted.value.data, UserData::UserDeleted(d) if d.user_id == me));
    assert_eq!(deleted.header("event-type"), Some("user.deleted"));
    let subs = read_until::<Envelope<SubscriptionData>>(
        &api.stack,
        &api.topic(Topic::Subscription),
        Duration::from_secs(60),
        |r| r.len() >= 2,
    )
    .await;
    assert_eq!(subs[1].value.event_type, "subscription.cancelled");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_delete_other_users() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let (user, me) = api.user().await;
    let (_, victim) = api.user().await;

    api.gql(DELETE_USER, json!({"id": victim}), Some(&user))
        .await
        .assert_code("FORBIDDEN");
    api.gql(DELETE_USER, json!({"id": victim}), None)
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(types(&outbox_of(&api, &victim).await), ["user.created"]);
    let live: bool = sqlx::query_scalar(
        "SELECT deleted_at IS NULL AND email IS NOT NULL FROM users WHERE id = $1::uuid",
    )
    .bind(&victim)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert!(live);

    let reply = api
        .gql(DELETE_USER, json!({"id": victim}), Some(&admin))
        .await;
    assert_eq!(reply.data()["deleteUser"], json!(true));
    assert_eq!(
        types(&outbox_of(&api, &victim).await),
        ["user.created", "user.deleted"]
    );
    api.gql(DELETE_USER, json!({"id": victim}), Some(&admin))
        .await
        .assert_code("NOT_FOUND");
    // A user may delete themself this way too.
    let reply = api.gql(DELETE_USER, json!({"id": me}), Some(&user)).await;
    assert_eq!(reply.data()["deleteUser"], json!(true));
    api.stop().await;
}

const UPDATE_ORG: &str = "mutation($id: ID!, $i: UpdateOrganizationInput!) { updateOrganization(id: $id, input: $i) { name slug version } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_rename_their_organization_as_organization_updated() {
    let api = TestApi::start().await;
    let (owner, _) = api.user().await;
    let (stranger, _) = api.user().await;
    let admin = api.admin().await;
    let org = api
        .create_organization(&owner, "Studio", "studio-one")
        .await;
    api.gql(
        "mutation { createOrganization(input: {name: \"Taken\", slug: \"taken-slug\"}) { id } }",
        json!({}),
        Some(&stranger),
    )
    .await
    .data();

    api.gql(
        UPDATE_ORG,
        json!({"id": org, "i": {"name": "Mine now"}}),
        Some(&stranger),
    )
    .await
    .assert_code("FORBIDDEN");
    api.gql(UPDATE_ORG, json!({"id": org, "i": {"name": "x"}}), None)
        .await
        .assert_code("UNAUTHENTICATED");
    api.gql(
        UPDATE_ORG,
        json!({"id": org, "i": {"slug": "taken-slug"}}),
        Some(&owner),
    )
    .await
    .assert_code("CONFLICT");
    api.gql(
        UPDATE_ORG,
        json!({"id": org, "i": {"slug": "Not A Slug"}}),
        Some(&owner),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    assert_eq!(
        types(&outbox_of(&api, &org).await),
        ["organization.created"]
    );

    let reply = api
        .gql(
            UPDATE_ORG,
            json!({"id": org, "i": {"name": "Studio Two"}}),
            Some(&owner),
        )
        .await;
    assert_eq!(
        reply.data()["updateOrganization"],
        json!({"name": "Studio Two", "slug": "studio-one", "version": 2})
    );
    let reply = api
        .gql(
            UPDATE_ORG,
            json!({"id": org, "i": {"slug": "studio-two"}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.data()["updateOrganization"],
        json!({"name": "Studio Two", "slug": "studio-two", "version": 3})
    );
    let rows = outbox_of(&api, &org).await;
    assert_eq!(
        types(&rows),
        [
            "organization.created",
            "organization.updated",
            "organization.updated"
        ]
    );
    assert_eq!(
        rows[2].2["OrganizationUpdated"],
        json!({"organizationId": org, "name": "Studio Two", "slug": "studio-two"})
    );

    api.wait_published(Duration::from_secs(30)).await;
    let records = read_until::<Envelope<OrganizationData>>(
        &api.stack,
        &api.topic(Topic::Organization),
        Duration::from_secs(60),
        |r| r.iter().filter(|r| r.key == org).count() == 3,
    )
    .await;
    let last = records.iter().rfind(|r| r.key == org).unwrap();
    assert_eq!(last.value.aggregate_version, 3);
    assert!(
        matches!(&last.value.data, OrganizationData::OrganizationUpdated(o) if o.slug == "studio-two")
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_fields_clear_to_null_and_absent_ones_stay() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let anime = api.create_anime(&admin, "Haibane Renmei").await;
    let update_anime = "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { title synopsis releaseYear version } }";

    // Absent: kept. Null: cleared.
    let reply = api
        .gql(
            update_anime,
            json!({"id": anime, "i": {"title": "Haibane"}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.data()["updateAnime"],
        json!({"title": "Haibane", "synopsis": "s", "releaseYear": 2020, "version": 2})
    );
    let reply = api
        .gql(
            update_anime,
            json!({"id": anime, "i": {"synopsis": null, "releaseYear": null}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.data()["updateAnime"],
        json!({"title": "Haibane", "synopsis": null, "releaseYear": null, "version": 3})
    );
    // A required field cannot be cleared.
    api.gql(
        update_anime,
        json!({"id": anime, "i": {"title": null}}),
        Some(&admin),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    let rows = outbox_of(&api, &anime).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].2["AnimeUpdated"]["synopsis"], Value::Null);
    assert_eq!(rows[2].2["AnimeUpdated"]["releaseYear"], Value::Null);

    let episode = api
        .gql(
            "mutation($a: ID!) { createEpisode(input: {animeId: $a, number: 1, title: \"Cocoon\", durationSeconds: 1440, airDate: \"2002-10-09\"}) { id } }",
            json!({"a": anime}),
            Some(&admin),
        )
        .await;
    let episode = episode.data()["createEpisode"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let update_episode = "mutation($id: ID!, $i: UpdateEpisodeInput!) { updateEpisode(id: $id, input: $i) { number title durationSeconds airDate version } }";
    let reply = api
        .gql(
            update_episode,
            json!({"id": episode, "i": {"title": null, "airDate": null}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.data()["updateEpisode"],
        json!({"number": 1, "title": null, "durationSeconds": 1440, "airDate": null, "version": 2})
    );
    let reply = api
        .gql(
            update_episode,
            json!({"id": episode, "i": {"durationSeconds": null}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.data()["updateEpisode"]["durationSeconds"],
        Value::Null
    );
    api.gql(
        update_episode,
        json!({"id": episode, "i": {"number": null}}),
        Some(&admin),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    // An episode may also be created without a title.
    let untitled = api
        .gql(
            "mutation($a: ID!) { createEpisode(input: {animeId: $a, number: 2}) { title } }",
            json!({"a": anime}),
            Some(&admin),
        )
        .await;
    assert_eq!(untitled.data()["createEpisode"]["title"], Value::Null);

    api.wait_published(Duration::from_secs(30)).await;
    let records = read_until::<Envelope<EpisodeData>>(
        &api.stack,
        &api.topic(Topic::Episode),
        Duration::from_secs(60),
        |r| r.iter().filter(|r| r.key == episode).count() == 3,
    )
    .await;
    let last = records.iter().rfind(|r| r.key == episode).unwrap();
    match &last.value.data {
        EpisodeData::EpisodeUpdated(s) => {
            // Through JSON, so that this reads the same whatever the Rust type of `title`.
            assert_eq!(serde_json::to_value(s).unwrap()["title"], Value::Null);
            assert_eq!(s.duration_seconds, None);
            assert_eq!(s.air_date, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    let anime_records = read_until::<Envelope<AnimeData>>(
        &api.stack,
        &api.topic(Topic::Anime),
        Duration::from_secs(60),
        |r| r.len() >= 3,
    )
    .await;
    assert!(matches!(
        &anime_records[2].value.data,
        AnimeData::AnimeUpdated(s) if s.synopsis.is_none() && s.release_year.is_none()
    ));
    api.stop().await;
}
