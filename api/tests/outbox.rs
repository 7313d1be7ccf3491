//! The outbox under failure: Kafka unreachable while mutations keep coming, a relay killed
//! with SIGKILL mid-publish, and two API instances sharing one outbox.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anineplus_schemas::events::AnimeData;
use anineplus_schemas::{Envelope, Topic};
use common::{Record, TcpProxy, TestApi, TestDatabase, base_args, read_until};
use serde_json::json;

const UPDATE: &str =
    "mutation($id: ID!, $t: String!) { updateAnime(id: $id, input: {title: $t}) { version } }";

/// The final version of every anime, from PostgreSQL.
async fn final_versions(pool: &sqlx::PgPool) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id::text, version FROM anime")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// Reads the anime topic until every anime's versions 1..=final were seen, then checks
/// that, duplicates aside, each key's versions arrived in order.
async fn assert_all_events_in_order(api: &TestApi, finals: &HashMap<String, i64>, exact: bool) {
    let wanted: i64 = finals.values().sum();
    let records: Vec<Record<Envelope<AnimeData>>> = read_until(
        &api.stack,
        &api.topic(Topic::Anime),
        Duration::from_secs(120),
        |records: &[Record<Envelope<AnimeData>>]| {
            let distinct: std::collections::HashSet<_> = records
                .iter()
                .map(|r| (r.key.clone(), r.value.aggregate_version))
                .collect();
            distinct.len() as i64 >= wanted
        },
    )
    .await;
    let mut per_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in &records {
        assert_eq!(r.key, r.value.aggregate_id);
        let seen = per_key.entry(&r.key).or_default();
        if !seen.contains(&r.value.aggregate_version) {
            seen.push(r.value.aggregate_version);
        }
    }
    for (key, last) in finals {
        let expected: Vec<i64> = (1..=*last).collect();
        assert_eq!(
            per_key.get(key.as_str()),
            Some(&expected),
            "anime {key}: lost or reordered"
        );
    }
    if exact {
        assert_eq!(records.len() as i64, wanted, "no duplicates expected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_mutations_succeed_and_events_follow_when_it_returns() {
    // Kafka "down": the API bootstraps through a proxy port where nothing listens yet;
    // later the proxy to the real broker opens ("Kafka returns"). After bootstrap the
    // client talks to the broker's advertised address directly, so the same process
    // recovers.
    let stack = anineplus_testkit::Stack::from_env();
    let proxy = TcpProxy::reserve(stack.kafka_brokers.split(',').next().unwrap());
    let bootstrap = proxy.addr.clone();
    let api = TestApi::start_with(&[
        "--kafka-brokers",
        &bootstrap,
        "--rate-limit-requests",
        "100000",
        "--outbox-drain-secs",
        "1",
    ])
    .await;
    let admin = Arc::new(api.admin().await);
    let mut anime = Vec::new();
    for i in 0..10 {
        anime.push(api.create_anime(&admin, &format!("Outage {i}")).await);
    }
    // 10 writers, 99 updates each: with the 10 creates (and the admin's sign-up), 1,000
    // anime mutations, all acknowledged although Kafka is unreachable.
    let tasks: Vec<_> = anime
        .iter()
        .map(|id| {
            let (http, url, admin, id) = (api.http.clone(), api.url.clone(), admin.clone(), id.clone());
            tokio::spawn(async move {
                for n in 0..99 {
                    let body: serde_json::Value = http
                        .post(format!("{url}/graphql"))
                        .bearer_auth(admin.as_str())
                        .json(&json!({"query": UPDATE, "variables": {"id": id, "t": format!("v{n}")}}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert_eq!(body["data"]["updateAnime"]["version"], n + 2, "{body}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(pending, 1001, "nothing published while Kafka is down");
    // Still ready (writes succeed), reported as degraded.
    let ready = api
        .http
        .get(format!("{}/health/ready", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        (&body["status"], &body["kafka"]),
        (&json!("degraded"), &json!("down"))
    );

    // Kafka returns: the same process catches up, nothing lost or reordered.
    let finals = final_versions(&api.pool).await;
    proxy.up().await;
    api.wait_published(Duration::from_secs(150)).await;
    assert_all_events_in_order(&api, &finals, false).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_publish_loses_nothing() {
    let db = Arc::new(TestDatabase::create("api_test").await);
    let stack = anineplus_testkit::Stack::from_env();
    let topic_prefix = format!("{}.", anineplus_testkit::unique("apitest"));
    let redis_prefix = format!("{}:", anineplus_testkit::unique("apitest"));
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anineplus-api"))
        .args(base_args(&stack, &db.url, &topic_prefix, &redis_prefix))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate-limit-requests",
            "100000",
            "--outbox-batch",
            "20",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the API binary starts");
    let url_a = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let live = common::wait_binary_live(&http, &url_a, &mut child).await;
    assert!(live, "the API binary did not become live");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();

    let sign_up = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }";
    let body: serde_json::Value = http
        .post(format!("{url_a}/graphql"))
        .json(&json!({"query": sign_up, "variables": {"i": {"email": common::ADMIN_EMAIL, "name": "A", "password": "correct horse battery"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = Arc::new(body["data"]["signUp"]["token"].as_str().unwrap().to_owned());

    // Writers keep updating through whichever instance is current; a request that fails
    // while the instance dies is retried (it may or may not have committed: the final
    // versions are read from the database).
    let (current, watch) = tokio::sync::watch::channel(url_a.clone());
    let mut ids = Vec::new();
    for i in 0..4 {
        let body: serde_json::Value = http
            .post(format!("{url_a}/graphql"))
            .bearer_auth(admin.as_str())
            .json(&json!({"query": "mutation($t: String!) { createAnime(input: {title: $t, status: AIRING}) { id } }", "variables": {"t": format!("Kill {i}")}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(
            body["data"]["createAnime"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let writers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (http, admin, id, watch) = (http.clone(), admin.clone(), id.clone(), watch.clone());
            tokio::spawn(async move {
                let mut done = 0;
                while done < 60 {
                    let url = watch.borrow().clone();
                    let ok = http
                        .post(format!("{url}/graphql"))
                        .bearer_auth(admin.as_str())
                        .timeout(Duration::from_secs(5))
                        .json(&json!({"query": UPDATE, "variables": {"id": id, "t": format!("n{done}")}}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        done += 1;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    // Kill it once publication is under way.
    loop {
        let published: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if published >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let api = TestApi::launch(
        db.clone(),
        topic_prefix,
        redis_prefix,
        &["--rate-limit-requests", "100000"],
    )
    .await;
    current.send(api.url.clone()).unwrap();
    for w in writers {
        w.await.unwrap();
    }
    api.wait_published(Duration::from_secs(60)).await;
    let finals = final_versions(&pool).await;
    assert!(finals.values().all(|v| *v >= 61), "{finals:?}");
    assert_all_events_in_order(&api, &finals, false).await;
    drop(db);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_publish_through_one_relay_in_order() {
    let a = TestApi::start_with(&["--rate-limit-requests", "100000"]).await;
    let b = a.another(&["--rate-limit-requests", "100000"]).await;
    let admin = a.admin().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(a.create_anime(&admin, &format!("Twin {i}")).await);
    }
    for n in 0..30 {
        let api = if n % 2 == 0 { &a } else { &b };
        for id in &ids {
            api.gql(
                UPDATE,
                json!({"id": id, "t": format!("t{n}")}),
                Some(&admin),
            )
            .await
            .data();
        }
    }
    b.wait_published(Duration::from_secs(60)).await;
    let finals = final_versions(&a.pool).await;
    assert_all_events_in_order(&a, &finals, true).await;
    b.stop().await;
    a.stop().await;
}
