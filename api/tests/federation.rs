//! Federation with Apollo's own tools, on the real stack.
//!
//! Scenario: our API runs in-process (production mode, a real secret); a second subgraph
//! written with `@apollo/subgraph` (`tests/federation/reviews.mjs`) extends our `Anime`
//! entity by `id` with `ratings` and `averageScore` and returns `Anime` references of its
//! own. `@apollo/composition`'s `composeServices` must accept our `_service { sdl }`
//! beside it, and an Apollo Gateway (`@apollo/gateway` + `@apollo/server`, in
//! `tests/federation/gateway.mjs`) in front of both must serve a nested query, entity
//! joins in both directions (their fields on our `Anime`, through their `_entities`; our
//! fields on their references, through ours) and authenticated mutations whose token and
//! `x-correlation-id` reach our API (the correlation id is checked in the outbox row).
//!
//! The npm packages are pinned by `tests/federation/package-lock.json` and installed by
//! `bash scripts/node-deps.sh` (`make test` runs it); without them the tests fail and say
//! so, they do not skip.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anineplus_testkit::unique;
use common::TestApi;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The Node project of these tests, checked to be installed.
fn node_project() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/federation");
    assert!(
        dir.join("node_modules/@apollo/gateway").is_dir(),
        "the npm packages of the federation tests are not installed in {}: run `bash scripts/node-deps.sh` \
         (needs Node.js 20+ and npm; `make test` runs it)",
        dir.display()
    );
    dir
}

/// `node <script> <args>` in the Node project, with stdin and stdout piped.
fn node(script: &str, args: &[&str]) -> Child {
    Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(node_project())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js 20+ is needed): {e}"))
}

/// Our API as the gateway meets it in production: no GraphiQL, no introspection.
async fn production_api() -> TestApi {
    TestApi::start_with(&["--env", "prod"]).await
}

/// A GraphQL request to `url` with optional headers; the JSON answer.
async fn post(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
    headers: &[(&str, &str)],
) -> Value {
    let mut request = http
        .post(url)
        .json(&json!({"query": query, "variables": variables}));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("request to the gateway");
    let status = response.status();
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("HTTP {status}, not JSON: {text}"))
}

/// `data` of an answer that must have no errors.
fn data(answer: &Value) -> &Value {
    assert!(
        answer.get("errors").is_none(),
        "unexpected errors: {answer:#}"
    );
    &answer["data"]
}

/// `node compose.mjs [--alone]` over `sdl`: the composed API's `(Query, Mutation)` fields,
/// or a panic with the composition errors.
async fn compose(sdl: &str, alone: bool) -> (Vec<String>, Vec<String>) {
    let mut compose = node("compose.mjs", if alone { &["--alone"] } else { &[] });
    let mut stdin = compose.stdin.take().unwrap();
    stdin.write_all(sdl.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), compose.wait_with_output())
        .await
        .expect("composition finished within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "compose.mjs printed no result (exit {:?}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        result["ok"], true,
        "composeServices (alone: {alone}) refused our SDL: {result:#}\nSDL:\n{sdl}"
    );
    let fields = |root: &str| -> Vec<String> {
        let names = result[root].as_array().unwrap().iter();
        names.map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    (fields("query"), fields("mutation"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_composition_accepts_our_subgraph_alone_and_beside_another() {
    let api = production_api().await;
    let reply = api.gql("{ _service { sdl } }", json!({}), None).await;
    let sdl = reply.data()["_service"]["sdl"].as_str().unwrap().to_owned();

    for (alone, theirs) in [(true, None), (false, Some(("topRated", "rate")))] {
        let (query, mutation) = compose(&sdl, alone).await;
        let has = |fields: &[String], field: &str| fields.iter().any(|f| f == field);
        for field in [
            "anime",
            "animes",
            "episode",
            "me",
            "searchAnime",
            "trendingAnime",
            "subscriptionCounts",
        ]
        .into_iter()
        .chain(theirs.map(|t| t.0))
        {
            assert!(
                has(&query, field),
                "supergraph Query lacks {field}: {query:?}"
            );
        }
        for field in ["signUp", "login", "createAnime", "createEpisode"]
            .into_iter()
            .chain(theirs.map(|t| t.1))
        {
            assert!(
                has(&mutation, field),
                "supergraph Mutation lacks {field}: {mutation:?}"
            );
        }
        for federation in ["_service", "_entities"] {
            assert!(
                !has(&query, federation),
                "{federation} leaked into the API schema"
            );
        }
    }
    api.stop().await;
}

/// The gateway process and its address.
struct Gateway {
    url: String,
    _child: Child,
}

impl Gateway {
    /// Starts `gateway.mjs` in front of `api` and waits until it serves.
    async fn start(api: &TestApi) -> Self {
        let mut child = node("gateway.mjs", &[&format!("{}/graphql", api.url)]);
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Apollo Server logs to stdout too: the address is the line that is a JSON object.
        let address = async {
            while let Some(line) = lines.next_line().await? {
                match serde_json::from_str::<Value>(&line) {
                    Ok(started) if started["gateway"].is_string() => return Ok(Some(started)),
                    _ => eprintln!("gateway: {line}"),
                }
            }
            Ok::<_, std::io::Error>(None)
        };
        let started = match tokio::time::timeout(Duration::from_secs(60), address).await {
            Ok(Ok(Some(started))) => started,
            other => {
                let mut err = String::new();
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err),
                )
                .await;
                panic!("the gateway did not start ({other:?}):\n{err}");
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tokio::spawn(async move { tokio::io::copy(&mut stderr, &mut tokio::io::stderr()).await });
        Self {
            url: started["gateway"].as_str().unwrap().to_owned(),
            _child: child,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_nested_queries_entity_joins_and_authenticated_mutations() {
    let api = production_api().await;
    let gateway = Gateway::start(&api).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let gql = |query: &'static str, variables: Value, headers: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = gateway.url.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(&http, &url, query, variables, &headers).await
        }
    };

    // A mutation through the gateway: sign up the admin.
    let signed_up = gql(
        "mutation($i: SignUpInput!) { signUp(input: $i) { token user { role } } }",
        json!({"i": {"email": common::ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
        vec![],
    )
    .await;
    assert_eq!(data(&signed_up)["signUp"]["user"]["role"], "ADMIN");
    let bearer = format!(
        "Bearer {}",
        data(&signed_up)["signUp"]["token"].as_str().unwrap()
    );

    // Without the token, the gateway's mutation reaches our API unauthenticated.
    let create_anime = "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id title } }";
    let input = json!({"i": {"title": "Frieren", "genres": ["fantasy"], "status": "FINISHED", "releaseYear": 2023}});
    let refused = gql(create_anime, input.clone(), vec![]).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused:#}"
    );

    // With it (and a correlation id), it succeeds, and both headers reached our API.
    let correlation = unique("federation-cid");
    let created = gql(
        create_anime,
        input,
        vec![
            ("authorization", bearer.clone()),
            ("x-correlation-id", correlation.clone()),
        ],
    )
    .await;
    let anime = data(&created)["createAnime"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (event, cid): (String, Option<String>) = sqlx::query_as(
        "SELECT event_type, correlation_id FROM outbox WHERE aggregate_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(&anime)
    .fetch_one(&api.pool)
    .await
    .expect("the outbox row of the gateway's mutation");
    assert_eq!(event, "anime.created");
    assert_eq!(
        cid.as_deref(),
        Some(correlation.as_str()),
        "the correlation id did not reach our API"
    );

    for number in 1..=2 {
        let episode = gql(
            "mutation($i: CreateEpisodeInput!) { createEpisode(input: $i) { number } }",
            json!({"i": {"animeId": anime, "number": number, "title": format!("Episode {number}")}}),
            vec![("authorization", bearer.clone())],
        )
        .await;
        assert_eq!(data(&episode)["createEpisode"]["number"], number);
    }

    // A mutation of the other subgraph, on our entity's id.
    for score in [9, 10] {
        let rated = gql(
            "mutation($a: ID!, $s: Int!) { rate(animeId: $a, score: $s) { score anime { id title } } }",
            json!({"a": anime, "s": score}),
            vec![],
        )
        .await;
        // `anime { title }` of their answer is ours: resolved through our `_entities`.
        assert_eq!(
            data(&rated)["rate"]["anime"]["title"],
            "Frieren",
            "{rated:#}"
        );
    }

    // Nested query on our subgraph, joined to their fields (their `_entities`).
    let nested = gql(
        "query($id: ID!) { anime(id: $id) { title episodes { number title anime { title averageScore } } \
         ratings { score } averageScore } }",
        json!({"id": anime}),
        vec![],
    )
    .await;
    let node = &data(&nested)["anime"];
    assert_eq!(node["title"], "Frieren");
    assert_eq!(node["averageScore"], 9.5);
    assert_eq!(node["ratings"], json!([{"score": 9}, {"score": 10}]));
    let episodes = node["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 2, "{nested:#}");
    assert_eq!(
        episodes[0]["anime"],
        json!({"title": "Frieren", "averageScore": 9.5})
    );

    // The other way: their root field, our fields on its `Anime` references.
    let top = gql(
        "{ topRated { id title status releaseYear episodes { number } averageScore } }",
        json!({}),
        vec![],
    )
    .await;
    assert_eq!(
        data(&top)["topRated"],
        json!([{"id": anime, "title": "Frieren", "status": "FINISHED", "releaseYear": 2023,
                "episodes": [{"number": 1}, {"number": 2}], "averageScore": 9.5}]),
        "{top:#}"
    );

    drop(gateway);
    api.stop().await;
}
