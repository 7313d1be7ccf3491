//! The schemas pages against the real registry: a subject of the test's own with two
//! versions is listed, its compatibility level shown, its two versions compared side by
//! side (the added field on the right), and "would this schema be accepted?" answers with
//! the registry's own check (an added field without a default is refused under BACKWARD,
//! one with a default accepted); a check without the CSRF token and an unknown subject are
//! refused.

mod common;

use std::time::Duration;

use anineplus_api::domain::Role;
use anineplus_console::config::GroupSpec;
use anineplus_console::{ConsoleConfig, PipelineSpec};
use anineplus_schemas::registry_client::RegistryClient;
use anineplus_testkit::{Stack, TestDatabase, unique};

const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
const NO_DEFAULT: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0},{"name":"c","type":"int"}]}"#;
const WITH_DEFAULT: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0},{"name":"c","type":"int","default":1}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_versions_diff_and_the_compatibility_check() {
    let stack = Stack::from_env();
    stack.registry().await.unwrap_or_else(|e| panic!("{e}"));
    let subject = format!("{}-value", unique("console-schemas"));
    let registry = RegistryClient::new(&stack.registry_url);
    registry.register(&subject, V1).await.unwrap();
    registry.register(&subject, V2).await.unwrap();

    let db = TestDatabase::create("console_schemas").await;
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_brokers: stack.kafka_brokers.clone(),
        schema_registry_url: stack.registry_url.clone(),
        database_url: db.url.clone(),
        topic_prefix: format!("{}.", unique("t")),
        pipelines: vec![PipelineSpec {
            name: "indexer".into(),
            metrics_url: "http://127.0.0.1:9".into(),
            groups: vec![GroupSpec {
                group: unique("g"),
                topics: vec!["anime".into()],
            }],
        }],
        api_url: "http://127.0.0.1:9".into(),
        jwt_secret: anineplus_api::config::DEV_JWT_SECRET.into(),
        jwt_issuer: "anineplus".into(),
        jwt_audience: "anineplus-api".into(),
        session_ttl: Duration::from_secs(600),
        poll_interval: Duration::from_secs(5),
        secure_cookies: false,
        default_rate: 10,
        search_url: anineplus_connectors::search::DEFAULT_URL.to_owned(),
        index_prefix: anineplus_schemas::indices::DEFAULT_PREFIX.to_owned(),
    };
    let console = common::serve(config).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed = http
        .post(format!("{}/sign-in", console.url))
        .form(&[("token", common::token(Role::Operator))])
        .send()
        .await
        .unwrap();
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: String| {
        let (http, cookie) = (http.clone(), cookie.clone());
        async move {
            let r = http
                .get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let (status, list) = get(format!("{}/schemas?q={subject}", console.url)).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&subject) && list.contains("1 of "), "{list}");

    let (status, page) = get(format!("{}/schemas/{subject}", console.url)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("versions: 1, 2"), "{page}");
    assert!(
        page.contains("<strong id=\"level\">BACKWARD</strong>"),
        "{page}"
    );
    let added: Vec<&str> = page.split("<tr class=\"added\">").skip(1).collect();
    assert!(
        added.iter().any(|row| row.contains("&quot;b&quot;")),
        "the field added in v2 is on the right: {page}"
    );
    assert!(
        !page.contains("<tr class=\"removed\">"),
        "nothing was removed"
    );

    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the check form's CSRF token")
        .to_owned();
    let check = |schema: &'static str, csrf: String| {
        let (http, cookie, url) = (http.clone(), cookie.clone(), console.url.clone());
        let subject = subject.clone();
        async move {
            let r = http
                .post(format!("{url}/schemas/{subject}/check"))
                .header("cookie", cookie)
                .form(&[("schema", schema), ("csrf", csrf.as_str())])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, refused) = check(NO_DEFAULT, csrf.clone()).await;
    assert_eq!(status, 200, "{refused}");
    assert!(refused.contains("Would not be accepted"), "{refused}");
    let (_, accepted) = check(WITH_DEFAULT, csrf.clone()).await;
    assert!(accepted.contains("Would be accepted"), "{accepted}");
    assert_eq!(
        registry.versions(&subject).await.unwrap(),
        vec![1, 2],
        "a check registers nothing"
    );
    let (status, _) = check(WITH_DEFAULT, "forged".into()).await;
    assert_eq!(status, 403, "no CSRF token, no check");
    let (status, _) = check("not json", csrf).await;
    assert_eq!(status, 400, "not JSON");
    let (status, _) = get(format!("{}/schemas/{}-nope", console.url, subject)).await;
    assert_eq!(status, 404, "an unknown subject");
    println!(
        "{subject}: versions 1, 2 compared; the check refused a field without default and accepted one with"
    );

    console.stop().await;
    db.remove().await;
}
