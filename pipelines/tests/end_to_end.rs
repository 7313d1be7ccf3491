//! End to end on the real stack: the API and the search indexer served in this process
//! (unique database, topic prefix, consumer group and index prefix). A mutation goes
//! API → PostgreSQL + outbox → relay → Kafka → indexer → OpenSearch, and `searchAnime`
//! (the `index` backend) shows it: created, renamed, deleted.

mod common;

use std::time::Duration;

use anineplus_api::Config;
use anineplus_schemas::Topic;
use anineplus_testkit::unique;
use clap::Parser;
use common::{Harness, header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a change may take to become searchable.
const VISIBLE_WITHIN: Duration = Duration::from_secs(30);

const SEARCH: &str = "query($q: String!, $first: Int, $after: String) {
  searchAnime(query: $q, first: $first, after: $after) {
    totalCount
    edges { cursor node { id title version } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// A database of its own on the stack's PostgreSQL.
struct Database {
    name: String,
    url: String,
    admin_url: String,
}

impl Database {
    async fn create(admin_url: &str) -> Self {
        let name = unique("e2e").replace('-', "_");
        let admin = sqlx::PgPool::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url, String::new()),
        };
        let (server, _) = base.rsplit_once('/').expect("a database URL with a path");
        Database {
            url: format!("{server}/{name}{query}"),
            name,
            admin_url: admin_url.to_owned(),
        }
    }

    async fn drop(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}

/// The API served in this process, with the `index` search backend.
struct Api {
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anineplus_api::Result<()>>,
}

impl Api {
    async fn start(t: &Harness, db: &Database) -> Self {
        let redis_prefix = format!("{}:", unique("e2e"));
        let config = Config::parse_from([
            "anineplus-api",
            "--env",
            "dev",
            "--database-url",
            &db.url,
            "--database-max-connections",
            "5",
            "--kafka-brokers",
            &t.stack.kafka_brokers,
            "--kafka-topic-prefix",
            &t.topic_prefix,
            "--schema-registry-url",
            &t.stack.registry_url,
            "--redis-url",
            &t.stack.redis_url,
            "--redis-key-prefix",
            &redis_prefix,
            "--admin-emails",
            anineplus_api::config::DEV_ADMIN_EMAIL,
            "--outbox-poll-ms",
            "1000",
            "--search-backend",
            "index",
            "--elasticsearch-url",
            &t.stack.search_url,
            "--index-prefix",
            &t.index_prefix,
        ]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(anineplus_api::serve(config, listener, shutdown.clone()));
        let api = Api {
            url,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown,
            task,
        };
        for _ in 0..200 {
            assert!(!api.task.is_finished(), "the API stopped during start-up");
            let live = api
                .http
                .get(format!("{}/health/live", api.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return api;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the API did not become live within 10 s");
    }

    async fn gql(&self, query: &str, variables: Value, token: Option<&str>, cid: &str) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("x-correlation-id", cid)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    async fn search(&self, query: &str, first: i64, after: Option<&str>) -> Value {
        let data = self
            .gql(
                SEARCH,
                json!({ "q": query, "first": first, "after": after }),
                None,
                "e2e-search",
            )
            .await;
        data["searchAnime"].clone()
    }

    /// Polls `searchAnime(query)` until `ok` holds, for up to [`VISIBLE_WITHIN`].
    async fn wait_search(&self, query: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
        loop {
            let page = self.search(query, 10, None).await;
            if ok(&page) {
                return page;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "searchAnime({query:?}): {what} not seen within {VISIBLE_WITHIN:?}; last page: {page}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("API task")
            .expect("the API stopped cleanly");
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mutation_becomes_searchable_through_the_indexer_and_leaves_with_its_delete() {
    let t = Harness::new().await;
    let db = Database::create(&t.stack.database_url).await;
    let indexer = t.start_indexer().await;
    let api = Api::start(&t, &db).await;

    let signed = api
        .gql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token user { role } } }",
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "e2e-signup",
        )
        .await;
    assert_eq!(signed["signUp"]["user"]["role"], json!("ADMIN"));
    let admin = signed["signUp"]["token"].as_str().unwrap().to_owned();

    // Create: the node appears, with the title of PostgreSQL's row.
    let create = "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }";
    let cid = "e2e-create-1";
    let created = api
        .gql(
            create,
            json!({"i": {"title": "Zorblax Journey", "synopsis": "An elf outlives her party", "genres": ["Fantasy"], "status": "AIRING", "releaseYear": 2023}}),
            Some(&admin),
            cid,
        )
        .await;
    let id = created["createAnime"]["id"].as_str().unwrap().to_owned();
    let page = api
        .wait_search("zorblax", "the created anime", |p| ids(p) == [id.clone()])
        .await;
    assert_eq!(page["totalCount"], json!(1), "{page}");
    assert_eq!(page["edges"][0]["node"]["title"], json!("Zorblax Journey"));
    assert_eq!(page["pageInfo"]["hasNextPage"], json!(false));

    // The mutation's correlation id travelled on the Kafka record.
    let records = t.read(&t.topic(Topic::Anime), 1).await;
    assert_eq!(
        header(&records[0].2, "correlation-id"),
        Some(cid),
        "{records:?}"
    );
    assert_eq!(records[0].0.as_deref(), Some(id.as_bytes()));

    // A second match: totalCount counts both, title matches rank first, pages follow.
    let other = api
        .gql(
            create,
            json!({"i": {"title": "Mushishi", "synopsis": "Ginko meets zorblax creatures", "genres": ["Mystery"], "status": "FINISHED", "releaseYear": 2005}}),
            Some(&admin),
            "e2e-create-2",
        )
        .await;
    let other = other["createAnime"]["id"].as_str().unwrap().to_owned();
    let page = api
        .wait_search("zorblax", "both anime", |p| p["totalCount"] == json!(2))
        .await;
    assert_eq!(
        ids(&page),
        [id.clone(), other.clone()],
        "title boosted: {page}"
    );
    let first = api.search("zorblax", 1, None).await;
    assert_eq!(ids(&first), [id.as_str()]);
    assert_eq!(first["totalCount"], json!(2));
    assert_eq!(first["pageInfo"]["hasNextPage"], json!(true));
    let second = api
        .search("zorblax", 1, first["pageInfo"]["endCursor"].as_str())
        .await;
    assert_eq!(ids(&second), [other.as_str()]);
    assert_eq!(second["pageInfo"]["hasNextPage"], json!(false));

    // Update: the new title is found, the old one no longer is.
    api.gql(
        "mutation($id: ID!, $i: UpdateAnimeInput!) { updateAnime(id: $id, input: $i) { version } }",
        json!({"id": id, "i": {"title": "Quovadel Frontier"}}),
        Some(&admin),
        "e2e-update",
    )
    .await;
    let page = api
        .wait_search("quovadel", "the renamed anime", |p| ids(p) == [id.clone()])
        .await;
    assert_eq!(
        page["edges"][0]["node"]["title"],
        json!("Quovadel Frontier")
    );
    assert_eq!(page["edges"][0]["node"]["version"], json!(2));
    let old = api
        .wait_search("zorblax", "the old title gone", |p| {
            ids(p) == [other.clone()]
        })
        .await;
    assert_eq!(old["totalCount"], json!(1), "{old}");

    // Delete: no longer found (the index keeps a tombstone that `live` excludes).
    api.gql(
        "mutation($id: ID!) { deleteAnime(id: $id) }",
        json!({"id": id}),
        Some(&admin),
        "e2e-delete",
    )
    .await;
    let page = api
        .wait_search("quovadel", "the delete", |p| p["totalCount"] == json!(0))
        .await;
    assert!(ids(&page).is_empty(), "{page}");
    let (_, tombstone) = t
        .wait_doc("anime", &id, |_, s| s["deleted"] == json!(true))
        .await;
    assert_eq!(tombstone["aggregateVersion"], json!(3));

    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.drop().await;
}
