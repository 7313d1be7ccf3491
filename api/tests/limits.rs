//! Limits and input handling: depth, complexity, aliases, operations, body size, page
//! sizes, validation, SQL-injection strings stored verbatim, error codes everywhere.

mod common;

use common::TestApi;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_shape_limits() {
    let api = TestApi::start_with(&[
        "--max-depth",
        "6",
        "--max-complexity",
        "200",
        "--max-aliases",
        "3",
    ])
    .await;
    let admin = api.admin().await;
    let anime = api.create_anime(&admin, "Deep").await;

    // Depth: comment → anime → episodes → anime → ... nests without bound in the schema.
    let deep = "query($id: ID!) { anime(id: $id) { episodes(first: 1) { anime { episodes(first: 1) { anime { episodes(first: 1) { anime { title } } } } } } } }";
    let reply = api.gql(deep, json!({"id": anime}), None).await;
    reply.assert_error("BAD_USER_INPUT", "nested too deep");

    // Complexity: a large page of nested lists.
    let complex = "{ animes(first: 100) { edges { node { comments(first: 100) { edges { node { id } } } } } } }";
    let reply = api.gql(complex, json!({}), None).await;
    reply.assert_error("BAD_USER_INPUT", "complex");

    // Aliases.
    let aliases = "{ a: animes { totalCount } b: animes { totalCount } c: animes { totalCount } d: animes { totalCount } }";
    let reply = api.gql(aliases, json!({}), None).await;
    reply.assert_error("BAD_USER_INPUT", "aliases");

    // Operations per document and per batch.
    let ops: String = (0..6)
        .map(|i| format!("query Q{i} {{ animes {{ totalCount }} }} "))
        .collect();
    api.gql(&ops, json!({}), None)
        .await
        .assert_code("BAD_USER_INPUT");
    let batch: Vec<_> = (0..6)
        .map(|_| json!({"query": "{ animes { totalCount } }"}))
        .collect();
    let response = api
        .http
        .post(format!("{}/graphql", api.url))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Page sizes are capped.
    api.gql("{ animes(first: 1000) { totalCount } }", json!({}), None)
        .await
        .assert_code("BAD_USER_INPUT");
    // Syntax errors and unknown fields carry a code too.
    api.gql("{ animes(", json!({}), None)
        .await
        .assert_code("BAD_USER_INPUT");
    api.gql("{ nope }", json!({}), None)
        .await
        .assert_code("BAD_USER_INPUT");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let api = TestApi::start_with(&["--max-body-bytes", "2048"]).await;
    let big = format!("{{ animes {{ totalCount }} }} # {}", "x".repeat(4096));
    let response = api
        .http
        .post(format!("{}/graphql", api.url))
        .json(&json!({"query": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let reply = api.gql("{ animes { totalCount } }", json!({}), None).await;
    assert_eq!(reply.data()["animes"]["totalCount"], 0);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_strings_are_stored_verbatim_and_inputs_validated() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let evil = [
        "'; DROP TABLE anime; --",
        "Robert'); DELETE FROM users WHERE ('1'='1",
        "\" OR 1=1 --",
        "%_\\ <script>alert(1)</script>",
    ];
    let anime = api.create_anime(&admin, evil[0]).await;
    for body in evil {
        let reply = api
            .gql(
                "mutation($a: ID!, $b: String!) { postComment(input: {animeId: $a, body: $b}) { body } }",
                json!({"a": anime, "b": body}),
                Some(&admin),
            )
            .await;
        assert_eq!(reply.data()["postComment"]["body"], body);
    }
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT body FROM comments ORDER BY created_at, id")
            .fetch_all(&api.pool)
            .await
            .unwrap();
    assert_eq!(stored, evil);
    let title: String = sqlx::query_scalar("SELECT title FROM anime")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(title, evil[0]);
    // Search treats LIKE metacharacters literally.
    let reply = api
        .gql(
            "{ searchAnime(query: \"%\") { totalCount } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(reply.data()["searchAnime"]["totalCount"], 0);
    let reply = api
        .gql(
            "query($q: String!) { searchAnime(query: $q) { totalCount } }",
            json!({"q": "DROP TABLE"}),
            None,
        )
        .await;
    assert_eq!(reply.data()["searchAnime"]["totalCount"], 1);

    // Validation: email, lengths, enums; nothing written.
    let before = api.outbox_count().await;
    let sign_up = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }";
    for input in [
        json!({"email": "not-an-email", "name": "n", "password": "long enough"}),
        json!({"email": "a@b.co", "name": "", "password": "long enough"}),
        json!({"email": "a@b.co", "name": "n", "password": "short"}),
        json!({"email": "a@b.co", "name": "x".repeat(101), "password": "long enough"}),
    ] {
        api.gql(sign_up, json!({"i": input}), None)
            .await
            .assert_code("BAD_USER_INPUT");
    }
    api.gql(
        "mutation { createAnime(input: {title: \"t\", status: PAUSED}) { id } }",
        json!({}),
        Some(&admin),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    // Duplicate email: CONFLICT.
    api.gql(
        sign_up,
        json!({"i": {"email": common::ADMIN_EMAIL.to_uppercase(), "name": "n", "password": "long enough"}}),
        None,
    )
    .await
    .assert_code("CONFLICT");
    assert_eq!(api.outbox_count().await, before);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_headers() {
    let api = TestApi::start().await;
    let ready = api
        .http
        .get(format!("{}/health/ready", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "up", "postgres": "up", "redis": "up", "kafka": "up", "registry": "up"})
    );
    let reply = api.gql("{ animes { totalCount } }", json!({}), None).await;
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    assert!(reply.headers.contains_key("x-correlation-id"));
    let metrics = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "api_graphql_requests_total{operation=\"animes\"} 1",
        "api_graphql_request_duration_seconds_bucket",
        "api_graphql_errors_total{code=\"INTERNAL\"} 0",
        "api_outbox_backlog",
        "api_outbox_oldest_age_seconds",
        "api_outbox_relay_published_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    // Federation subgraph.
    let reply = api.gql("{ _service { sdl } }", json!({}), None).await;
    let sdl = reply.data()["_service"]["sdl"].as_str().unwrap().to_owned();
    assert!(sdl.contains("type Anime @key(fields: \"id\")"), "{sdl}");
    // GraphiQL in dev.
    let page = api
        .http
        .get(format!("{}/graphql", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_hides_the_schema() {
    let api = TestApi::start_with(&["--env", "prod", "--admin-emails", ""]).await;
    let reply = api
        .gql("{ __schema { types { name } } }", json!({}), None)
        .await;
    assert_eq!(
        reply.data()["__schema"],
        json!(null),
        "introspection is off"
    );
    // No "did you mean" hints outside dev.
    let reply = api.gql("{ anim(id: \"x\") { id } }", json!({}), None).await;
    reply.assert_code("BAD_USER_INPUT");
    let message = reply.body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
    let page = api
        .http
        .get(format!("{}/graphql", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    // No bootstrap admin in production: the dev admin email is an ordinary user.
    let reply = api
        .gql(
            "mutation { signUp(input: {email: \"admin@anineplus.local\", name: \"A\", password: \"correct horse battery\"}) { user { role } } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(reply.data()["signUp"]["user"]["role"], "USER");
    api.stop().await;
}

/// An anime with `count` episodes; returns its id.
async fn anime_with_episodes(api: &TestApi, admin: &str, count: usize) -> String {
    let anime = api.create_anime(admin, "Long runner").await;
    let create = "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { id } }";
    for n in 1..=count {
        api.gql(
            create,
            json!({"i": {"animeId": anime, "number": n, "title": format!("Episode {n}")}}),
            Some(admin),
        )
        .await
        .data();
    }
    anime
}

/// A depth-6 query: every list is unpaged, so 100 episodes fan out to 10^6 nodes.
const FAN_OUT: &str = "query($id: ID!) { episodes(animeId: $id) { anime { episodes { anime { episodes { id } } } } } }";

/// Scenario: an anonymous client sends the depth-6 fan-out over an anime with 100
/// episodes (accepted before: ~8 s of CPU, 14-21 MB). Unpaged lists now cost their size,
/// so it is refused before anything runs; `_entities` representations are bounded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaged_lists_cost_their_size() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let anime = anime_with_episodes(&api, &admin, 100).await;

    let started = std::time::Instant::now();
    let reply = api.gql(FAN_OUT, json!({"id": anime}), None).await;
    let elapsed = started.elapsed();
    let bytes = reply.body.to_string().len();
    println!(
        "fan-out query: {elapsed:?}, {bytes} bytes, status {}",
        reply.status
    );
    reply.assert_error("BAD_USER_INPUT", "complex");
    assert_eq!(reply.body["data"], json!(null));

    // A plain list still answers in full; `first`/`offset` page it.
    let reply = api
        .gql(
            "query($id: ID!) { anime(id: $id) { episodes { number } } }",
            json!({"id": anime}),
            None,
        )
        .await;
    assert_eq!(
        reply.data()["anime"]["episodes"].as_array().unwrap().len(),
        100
    );
    let reply = api
        .gql(
            "query($id: ID!) { episodes(animeId: $id, first: 10, offset: 95) { number } }",
            json!({"id": anime}),
            None,
        )
        .await;
    let numbers: Vec<i64> = reply.data()["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![96, 97, 98, 99, 100]);
    api.gql(
        "query($id: ID!) { episodes(animeId: $id, first: 101) { id } }",
        json!({"id": anime}),
        None,
    )
    .await
    .assert_code("BAD_USER_INPUT");

    // `_entities`: at most 100 representations, and each one counts its whole selection.
    let entities =
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Anime { title } } }";
    let reps = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| json!({"__typename": "Anime", "id": anime}))
            .collect()
    };
    let reply = api.gql(entities, json!({"r": reps(100)}), None).await;
    assert_eq!(reply.data()["_entities"].as_array().unwrap().len(), 100);
    let reply = api.gql(entities, json!({"r": reps(200)}), None).await;
    reply.assert_error("BAD_USER_INPUT", "representations");
    let heavy = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Anime { episodes { id title number } } } }";
    api.gql(heavy, json!({"r": reps(50)}), None)
        .await
        .assert_code("BAD_USER_INPUT");
    api.stop().await;
}

/// Scenario: with the complexity limit lifted, the fan-out is a heavy but allowed request.
/// It may use only a few pool connections at once and stops at its deadline, so another
/// client's simple reads (which need the database) stay fast meanwhile (before: up to 7 s
/// or `INTERNAL` once the pool was exhausted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_request_does_not_starve_other_reads() {
    let api = TestApi::start_with(&[
        "--max-complexity",
        "100000000",
        "--request-timeout-ms",
        "3000",
    ])
    .await;
    let admin = api.admin().await;
    let anime = anime_with_episodes(&api, &admin, 100).await;

    let heavy = {
        let http = api.http.clone();
        let url = format!("{}/graphql", api.url);
        let anime = anime.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let response = http
                .post(url)
                .json(&json!({"query": FAN_OUT, "variables": {"id": anime}}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (started.elapsed(), status, body)
        })
    };
    // Simple reads that go to the database (no cache), one after the other, while it runs.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut slowest = std::time::Duration::ZERO;
    let mut reads = 0;
    while !heavy.is_finished() && reads < 200 {
        let started = std::time::Instant::now();
        let reply = api
            .gql("{ animes(first: 1) { totalCount } }", json!({}), None)
            .await;
        assert_eq!(reply.data()["animes"]["totalCount"], 1, "{reply:?}");
        slowest = slowest.max(started.elapsed());
        reads += 1;
    }
    let (elapsed, status, body) = heavy.await.unwrap();
    println!(
        "heavy request: {elapsed:?}, status {status}, code {:?}; {reads} simple reads meanwhile, slowest {slowest:?}",
        body["errors"][0]["extensions"]["code"]
    );
    assert!(reads > 0, "the heavy request ended before any read");
    assert!(
        slowest < std::time::Duration::from_millis(1000),
        "a simple read waited {slowest:?} behind the heavy request"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(6),
        "the heavy request ran {elapsed:?} past its 3 s deadline"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    api.stop().await;
}
