//! Production is the default: the `anineplus-api` binary started with `API_ENV` unset.
//!
//! Scenario: an operator deploys the binary and forgets `API_ENV`. Without a JWT secret it
//! must refuse to start (status 2, naming `JWT_SECRET`), rather than fall back to the
//! public dev secret with which anyone can forge an ADMIN token; the dev secret itself is
//! refused outside dev; and with a real secret it serves without GraphiQL or introspection,
//! rejecting a token forged with the dev secret.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anineplus_api::config::DEV_JWT_SECRET;
use anineplus_testkit::{Stack, TestDatabase, unique};
use common::{base_args, free_port, wait_binary_live};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The harness's flags without the ones that choose the environment and the secret.
fn args_without_env(stack: &Stack, db: &TestDatabase, topic_prefix: &str) -> Vec<String> {
    let all = base_args(
        stack,
        &db.url,
        topic_prefix,
        &format!("{}:", unique("prod")),
    );
    all.chunks(2)
        .filter(|pair| pair[0] != "--env" && pair[0] != "--jwt-secret")
        .flatten()
        .cloned()
        .collect()
}

/// The binary with `API_ENV` and `JWT_SECRET` removed from its environment.
fn spawn(args: &[String], port: u16, secret: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_anineplus-api"));
    command
        .env_remove("API_ENV")
        .env_remove("JWT_SECRET")
        .env("RUST_LOG", "warn")
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(secret) = secret {
        command.env("JWT_SECRET", secret);
    }
    command.spawn().expect("the API binary starts")
}

/// An ADMIN token for user `sub` that anyone can forge: signed with the public dev secret.
fn forged_admin_token(sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": sub, "role": "ADMIN",
        "iss": "anineplus", "aud": "anineplus-api", "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(DEV_JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Signs up an ordinary user; returns their id.
async fn sign_up(http: &reqwest::Client, url: &str) -> String {
    let body: Value = http
        .post(format!("{url}/graphql"))
        .json(
            &json!({"query": "mutation($i: SignUpInput!) { signUp(input: $i) { user { id } } }",
            "variables": {"i": {"email": format!("{}@test.local", unique("user")), "name": "U",
                "password": "correct horse battery"}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["signUp"]["user"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("sign-up failed: {body}"))
        .to_owned()
}

async fn create_anime(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = http
        .post(format!("{url}/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": "mutation { createAnime(input: {title: \"Forged\", status: AIRING}) { id } }"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_env_unset_refuses_to_start_without_a_real_secret() {
    let stack = Stack::from_env();
    let db = TestDatabase::create("api_test").await;
    let topic_prefix = format!("{}.", unique("apitest"));
    let args = args_without_env(&stack, &db, &topic_prefix);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for (case, secret) in [
        ("no JWT_SECRET", None),
        ("the public dev secret", Some(DEV_JWT_SECRET)),
    ] {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut child = spawn(&args, port, secret);
        if wait_binary_live(&http, &url, &mut child).await {
            let user = sign_up(&http, &url).await;
            let (status, body) = create_anime(&http, &url, &forged_admin_token(&user)).await;
            child.kill().unwrap();
            child.wait().unwrap();
            common::delete_topics(&stack, &topic_prefix).await;
            panic!(
                "API_ENV unset, {case}: the API started as dev and answered a createAnime \
                 with an ADMIN token forged with the dev secret: HTTP {status} {body}"
            );
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains("JWT_SECRET"), "{case}: {stderr}");
    }
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_env_unset_serves_as_production() {
    let stack = Stack::from_env();
    let db = TestDatabase::create("api_test").await;
    let topic_prefix = format!("{}.", unique("apitest"));
    let args = args_without_env(&stack, &db, &topic_prefix);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn(&args, port, Some(common::SECRET));
    assert!(
        wait_binary_live(&http, &url, &mut child).await,
        "the API with a real secret did not start"
    );
    // A token forged with the dev secret is not ours.
    let user = sign_up(&http, &url).await;
    let (status, body) = create_anime(&http, &url, &forged_admin_token(&user)).await;
    // No GraphiQL, no introspection.
    let page = http.get(format!("{url}/graphql")).send().await.unwrap();
    let page_status = page.status().as_u16();
    let schema: Value = http
        .post(format!("{url}/graphql"))
        .json(&json!({"query": "{ __schema { queryType { name } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    db.remove().await;
    assert_eq!(status, 401, "forged dev-secret token: {body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(page_status, 404, "GraphiQL is dev only");
    assert_eq!(schema["data"]["__schema"], Value::Null, "{schema}");
}
