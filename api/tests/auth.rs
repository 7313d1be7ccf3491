//! Authentication (JWT negative cases, login) and authorization (roles, ownership).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SECRET, TestApi};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_unauthenticated() {
    let api = TestApi::start().await;
    let (token, id) = api.user().await;
    let me = "{ me { id email } }";
    let reply = api.gql(me, json!({}), Some(&token)).await;
    assert_eq!(reply.data()["me"]["id"], id.as_str());

    let good = json!({"sub": id, "role": "USER", "iss": "anineplus", "aud": "anineplus-api", "iat": now(), "exp": now() + 600});
    // The base of every case is accepted: each case fails for its own reason only.
    let reply = api.gql(me, json!({}), Some(&sign(&good, SECRET))).await;
    assert_eq!(reply.data()["me"]["id"], id.as_str());
    let mut cases: Vec<(&str, String)> = Vec::new();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(good.to_string());
    cases.push(("alg none", format!("{none_header}.{body}.")));
    cases.push((
        "wrong key",
        sign(&good, "another-secret-another-secret-another"),
    ));
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    cases.push(("expired", sign(&expired, SECRET)));
    let mut audience = good.clone();
    audience["aud"] = json!("someone-else");
    cases.push(("wrong audience", sign(&audience, SECRET)));
    let mut issuer = good.clone();
    issuer.as_object_mut().unwrap().remove("iss");
    cases.push(("missing issuer", sign(&issuer, SECRET)));
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    cases.push(("missing exp", sign(&no_exp, SECRET)));
    let mut not_yet = good.clone();
    not_yet["nbf"] = json!(now() + 3600);
    cases.push(("not valid before an hour from now", sign(&not_yet, SECRET)));
    cases.push(("garbage", "not.a.token".to_owned()));
    for (name, token) in cases {
        let reply = api.gql(me, json!({}), Some(&token)).await;
        assert_eq!(reply.code(), Some("UNAUTHENTICATED"), "{name}: {reply:?}");
    }
    // `nbf` has the same leeway as `exp` (5 s): a token valid in 2 s passes, as does a
    // past `nbf`.
    for nbf in [now() + 2, now() - 60] {
        let mut soon = good.clone();
        soon["nbf"] = json!(nbf);
        let reply = api.gql(me, json!({}), Some(&sign(&soon, SECRET))).await;
        assert_eq!(reply.data()["me"]["id"], id.as_str(), "nbf {nbf}");
    }
    // No token at all: anonymous, and `me` needs one.
    api.gql(me, json!({}), None)
        .await
        .assert_code("UNAUTHENTICATED");

    // Login: right password works, wrong one and unknown email look the same.
    let login = "mutation($i: LoginInput!) { login(input: $i) { token user { id role } } }";
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    let reply = api
        .gql(
            login,
            json!({"i": {"email": email, "password": "correct horse battery"}}),
            None,
        )
        .await;
    assert_eq!(reply.data()["login"]["user"]["id"], id.as_str());
    api.gql(
        login,
        json!({"i": {"email": email, "password": "wrong password"}}),
        None,
    )
    .await
    .assert_code("UNAUTHENTICATED");
    api.gql(
        login,
        json!({"i": {"email": "nobody@test.local", "password": "wrong password"}}),
        None,
    )
    .await
    .assert_code("UNAUTHENTICATED");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_ownership_are_enforced_and_failures_write_nothing() {
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let (alice, alice_id) = api.user().await;
    let (bob, bob_id) = api.user().await;
    let anime = api.create_anime(&admin, "Monster").await;
    let before = api.outbox_count().await;

    // Catalog writes: admins only.
    api.gql(
        "mutation { createAnime(input: {title: \"x\", status: AIRING}) { id } }",
        json!({}),
        Some(&alice),
    )
    .await
    .assert_code("FORBIDDEN");
    api.gql(
        "mutation($id: ID!) { deleteAnime(id: $id) }",
        json!({"id": anime}),
        Some(&alice),
    )
    .await
    .assert_code("FORBIDDEN");
    api.gql(
        "mutation($id: ID!) { deleteAnime(id: $id) }",
        json!({"id": anime}),
        None,
    )
    .await
    .assert_code("UNAUTHENTICATED");

    // Organizations: only the owner manages members.
    let org = api.create_organization(&alice, "Fans", "fans-club").await;
    let before_members = api.outbox_count().await;
    api.gql(
        "mutation($o: ID!, $u: ID!) { addMember(input: {organizationId: $o, userId: $u}) { id } }",
        json!({"o": org, "u": bob_id}),
        Some(&bob),
    )
    .await
    .assert_code("FORBIDDEN");
    assert_eq!(api.outbox_count().await, before_members);
    let reply = api
        .gql(
            "mutation($o: ID!, $u: ID!) { addMember(input: {organizationId: $o, userId: $u}) { version members { role } } }",
            json!({"o": org, "u": bob_id}),
            Some(&alice),
        )
        .await;
    assert_eq!(reply.data()["addMember"]["version"], 2);
    api.gql(
        "mutation($o: ID!, $u: ID!) { removeMember(organizationId: $o, userId: $u) { id } }",
        json!({"o": org, "u": alice_id}),
        Some(&bob),
    )
    .await
    .assert_code("FORBIDDEN");

    // Emails: only the user and admins.
    let query = "query($id: ID!) { user(id: $id) { name email } }";
    api.gql(query, json!({"id": alice_id}), Some(&bob))
        .await
        .assert_code("FORBIDDEN");
    let reply = api.gql(query, json!({"id": alice_id}), Some(&admin)).await;
    assert!(
        reply.data()["user"]["email"]
            .as_str()
            .unwrap()
            .ends_with("@test.local")
    );

    // Moderation: moderators only; a hidden comment is seen by its author only.
    let reply = api
        .gql(
            "mutation($a: ID!) { postComment(input: {animeId: $a, body: \"spoiler!\"}) { id } }",
            json!({"a": anime}),
            Some(&alice),
        )
        .await;
    let comment = reply.data()["postComment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let moderate = "mutation($id: ID!) { moderateComment(id: $id, status: HIDDEN, reason: \"spoiler\") { status version } }";
    api.gql(moderate, json!({"id": comment}), Some(&bob))
        .await
        .assert_code("FORBIDDEN");
    let reply = api
        .gql(moderate, json!({"id": comment}), Some(&admin))
        .await;
    assert_eq!(reply.data()["moderateComment"]["version"], 2);
    let list = "query($a: ID!) { comments(animeId: $a) { totalCount edges { node { id moderationReason } } } }";
    let reply = api.gql(list, json!({"a": anime}), Some(&bob)).await;
    assert_eq!(reply.data()["comments"]["totalCount"], 0);
    let reply = api.gql(list, json!({"a": anime}), Some(&alice)).await;
    assert_eq!(reply.data()["comments"]["totalCount"], 1);
    assert_eq!(
        reply.data()["comments"]["edges"][0]["node"]["moderationReason"],
        "spoiler"
    );

    // Subscriptions: one active per user; only the owner cancels.
    let reply = api
        .gql(
            "mutation { subscribe(plan: PREMIUM) { id status } }",
            json!({}),
            Some(&alice),
        )
        .await;
    let sub = reply.data()["subscribe"]["id"].as_str().unwrap().to_owned();
    api.gql(
        "mutation { subscribe(plan: BASIC) { id } }",
        json!({}),
        Some(&alice),
    )
    .await
    .assert_code("CONFLICT");
    let cancel = "mutation($id: ID!) { cancelSubscription(id: $id) { status version } }";
    api.gql(cancel, json!({"id": sub}), Some(&bob))
        .await
        .assert_code("NOT_FOUND");
    let reply = api.gql(cancel, json!({"id": sub}), Some(&alice)).await;
    assert_eq!(reply.data()["cancelSubscription"]["status"], "CANCELLED");

    // Every refused mutation wrote nothing: count the successful ones only.
    // (org created, member added, comment posted, moderated, subscribed, cancelled)
    assert_eq!(api.outbox_count().await, before + 6);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_member_refuses_a_second_owner() {
    // An OWNER added through addMember could never be removed (removeMember refuses
    // owners) and would not manage members either (that is the creator's right): an
    // organization has one owner, its creator, so addMember refuses the role, for admins too.
    let api = TestApi::start().await;
    let admin = api.admin().await;
    let (alice, _) = api.user().await;
    let (_, bob_id) = api.user().await;
    let org = api
        .create_organization(&alice, "Owners", "owners-club")
        .await;
    let add = "mutation($o: ID!, $u: ID!) { addMember(input: {organizationId: $o, userId: $u, role: OWNER}) { version members { role user { id } } } }";
    let before = api.outbox_count().await;
    for (who, token) in [("the owner", &alice), ("an admin", &admin)] {
        let reply = api
            .gql(add, json!({"o": org, "u": bob_id}), Some(token))
            .await;
        if reply.code().is_none() {
            let removed = api
                .gql(
                    "mutation($o: ID!, $u: ID!) { removeMember(organizationId: $o, userId: $u) { id } }",
                    json!({"o": org, "u": bob_id}),
                    Some(&alice),
                )
                .await;
            panic!(
                "{who} added a second OWNER: {}; removing them then answered {}",
                reply.body, removed.body
            );
        }
        reply.assert_code("BAD_USER_INPUT");
    }
    assert_eq!(api.outbox_count().await, before, "nothing written");
    // A MEMBER is added (and removed) as before.
    let reply = api
        .gql(
            "mutation($o: ID!, $u: ID!) { addMember(input: {organizationId: $o, userId: $u, role: MEMBER}) { version } }",
            json!({"o": org, "u": bob_id}),
            Some(&alice),
        )
        .await;
    assert_eq!(reply.data()["addMember"]["version"], 2);
    api.stop().await;
}

/// An RS256 token signed with the test key, naming `kid`.
fn rs256(kid: &str, sub: &str) -> String {
    let key =
        EncodingKey::from_rsa_pem(include_bytes!("../src/auth/testdata/rsa-test.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let claims = json!({"sub": sub, "role": "USER", "iss": "anineplus", "aud": "anineplus-api", "iat": now(), "exp": now() + 600});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_are_used_only_for_rs256_signatures() {
    // One RSA key published under four ids: for RS256 signatures (accepted), for
    // encryption (`use: enc`), for RS512 (`alg`), and for encryption only (`key_ops`).
    // A token naming any of the last three must not be verified with it.
    let published: Value =
        serde_json::from_str(include_str!("../src/auth/testdata/rsa-test.jwks.json")).unwrap();
    let key = published["keys"][0].clone();
    let with = |kid: &str, field: &str, value: Value| {
        let mut k = key.clone();
        k["kid"] = json!(kid);
        k[field] = value;
        k
    };
    let jwks = json!({"keys": [
        with("sig", "use", json!("sig")),
        with("enc", "use", json!("enc")),
        with("rs512", "alg", json!("RS512")),
        with("ops", "key_ops", json!(["encrypt"])),
    ]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let api = TestApi::start_with(&["--jwt-jwks-url", &url]).await;
    let (_, id) = api.user().await;
    let me = "{ me { id } }";
    let reply = api.gql(me, json!({}), Some(&rs256("sig", &id))).await;
    assert_eq!(reply.data()["me"]["id"], id.as_str());
    let mut accepted = Vec::new();
    for kid in ["enc", "rs512", "ops"] {
        let reply = api.gql(me, json!({}), Some(&rs256(kid, &id))).await;
        if reply.code() != Some("UNAUTHENTICATED") {
            accepted.push(format!("{kid}: {}", reply.body));
        }
    }
    assert!(
        accepted.is_empty(),
        "tokens verified with keys not meant for RS256 signatures: {accepted:?}"
    );
    api.stop().await;
    server.abort();
}
