//! Password checks: each `login` and `signUp` is counted, whatever the batch or aliases
//! around it, and an account backs off after consecutive failures. (The 5 × 15 batch is
//! `password_batch.rs`; that hashing runs a few at a time is the unit test of
//! `auth::password`.)

mod common;

use common::TestApi;
use serde_json::json;

/// Scenario: an account's backoff starts after the configured failures, doubles, and a
/// successful login after it clears the failures; other accounts are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_backs_off_after_failures() {
    let api = TestApi::start_with(&[
        "--rate-limit-password-checks",
        "1000",
        "--rate-limit-login-failures",
        "3",
        "--rate-limit-login-backoff-ms",
        "1000",
    ])
    .await;
    api.sign_up("alice@test.local").await;
    api.sign_up("bob@test.local").await;
    for _ in 0..3 {
        api.login("alice@test.local", "wrong password")
            .await
            .assert_code("UNAUTHENTICATED");
    }
    api.login("alice@test.local", "correct horse battery")
        .await
        .assert_code("RATE_LIMITED");
    // Bob is not affected.
    api.login("bob@test.local", "correct horse battery")
        .await
        .data();
    // After the first backoff (1 s) Alice may try again; a success clears her failures.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.login("alice@test.local", "correct horse battery")
        .await
        .data();
    for _ in 0..2 {
        api.login("ALICE@test.local", "wrong password")
            .await
            .assert_code("UNAUTHENTICATED");
    }
    api.login("alice@test.local", "correct horse battery")
        .await
        .data();
    api.stop().await;
}

/// Scenario: a batch of sign-ups is counted like logins: each one hashes a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_count_as_password_checks() {
    let api = TestApi::start_with(&["--rate-limit-password-checks", "4"]).await;
    let fields: String = (0..6)
        .map(|i| {
            format!("s{i}: signUp(input: {{email: \"new{i}@test.local\", name: \"N\", password: \"correct horse battery\"}}) {{ token }} ")
        })
        .collect();
    let reply = api
        .gql(&format!("mutation {{ {fields}}}"), json!({}), None)
        .await;
    assert_eq!(reply.count_code("RATE_LIMITED"), 1, "{reply:?}");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(users, 4);
    api.stop().await;
}
