//! The search sync page on the real stack: an anime created through the API and indexed,
//! then its document deleted behind the indexer's back; from the console, `verify` shows
//! the drift (one missing), `repair` asks for a confirmation, then writes the document
//! back from PostgreSQL and lands in the audit log, and a second `verify` finds the index
//! in sync.

mod common;

use std::time::Duration;

use anineplus_api::domain::Role;
use anineplus_testkit::TestDatabase;
use common::Harness;
use serde_json::json;

/// The session's CSRF token from a page's forms.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with the CSRF token")
        + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

/// The anime row of the sync table, once `done` says it finished (at most 60 s).
async fn wait_row(http: &reqwest::Client, url: &str, done: &str) -> String {
    let mut row = String::new();
    for _ in 0..600 {
        let table = http
            .get(format!("{url}/fragments/sync"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start = table.find("<tr id=\"sync-anime\">").expect("the anime row");
        row = table[start..].split("</tr>").next().unwrap().to_owned();
        if row.contains(done) {
            // The status cell alone: what the page says of the run.
            let status = row.split("<td class=\"status\">").nth(1).unwrap_or(&row);
            return status.split("</td>").next().unwrap_or(status).to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the anime row never said {done:?}: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_shows_drift_and_a_confirmed_repair_fixes_it_and_is_audited() {
    let t = Harness::new().await;
    let db = TestDatabase::create("console_sync").await;
    let indexer = t.start_indexer().await;
    let api = common::indexer::api::Api::start(&t, &db).await;
    let signed = api
        .gql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
            None,
            "console-sync-signup",
        )
        .await;
    let admin = signed["signUp"]["token"].as_str().unwrap().to_owned();
    let created = api
        .gql(
            "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
            json!({"i": {"title": "Kestrel Console", "genres": ["Drama"], "status": "FINISHED", "releaseYear": 2001}}),
            Some(&admin),
            "console-sync-create",
        )
        .await;
    let id = created["createAnime"]["id"].as_str().unwrap().to_owned();
    t.wait_doc("anime", &id, |v, _| v == 1).await;
    // The document goes behind the indexer's back: drift the index cannot see by itself.
    let engine = reqwest::Client::new();
    let deleted = engine
        .delete(format!(
            "{}/{}/_doc/{id}?refresh=true",
            t.stack.search_url,
            t.alias("anime")
        ))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{:?}", deleted.text().await);

    let console = common::serve(common::config(
        &t,
        &db,
        indexer.running.metrics_addr,
        &api.url,
    ))
    .await;
    let url = &console.url;
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{url}/sign-in"))
        .form(&[("token", common::token(Role::Admin))])
        .send()
        .await
        .unwrap();
    assert!(
        signed_in.status().is_redirection(),
        "{}",
        signed_in.status()
    );
    let cookie = signed_in.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse().unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let page = http
        .get(format!("{url}/sync"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Search sync") && page.contains("sync-anime"),
        "{page}"
    );
    let token = csrf(&page);

    // Verify: reads, no confirmation; the drift shows.
    let started = http
        .post(format!("{url}/sync"))
        .form(&[
            ("csrf", token.as_str()),
            ("index", "anime"),
            ("action", "verify"),
        ])
        .send()
        .await
        .unwrap();
    assert!(started.status().is_redirection(), "{}", started.status());
    let row = wait_row(&http, url, "drift:").await;
    assert!(row.contains("1 missing") && row.contains(&id), "{row}");
    eprintln!("sync: verify from the console: {row}");

    // Repair: a confirmation first, nothing written without it.
    let confirm = http
        .post(format!("{url}/sync"))
        .form(&[
            ("csrf", token.as_str()),
            ("index", "anime"),
            ("action", "repair"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        confirm.contains("id=\"confirm\"") && confirm.contains("Repair"),
        "{confirm}"
    );
    assert!(
        t.doc("anime", &id).await.is_none(),
        "nothing written before the confirmation"
    );
    let without = http
        .post(format!("{url}/sync"))
        .form(&[("index", "anime"), ("action", "repair"), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        without.status().as_u16(),
        403,
        "a form without the CSRF token is refused"
    );
    http.post(format!("{url}/sync"))
        .form(&[
            ("csrf", token.as_str()),
            ("index", "anime"),
            ("action", "repair"),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    let row = wait_row(&http, url, "written").await;
    assert!(row.contains("1 written, 0 refused"), "{row}");
    t.wait_doc("anime", &id, |v, _| v == 1).await;
    eprintln!("sync: repair from the console: {row}");

    // In sync again, and the repair is in the audit log.
    http.post(format!("{url}/sync"))
        .form(&[
            ("csrf", token.as_str()),
            ("index", "anime"),
            ("action", "verify"),
        ])
        .send()
        .await
        .unwrap();
    let row = wait_row(&http, url, "in sync").await;
    assert!(row.contains("in sync: 1 rows, 1 documents"), "{row}");
    let audit = http
        .get(format!("{url}/audit"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("repair") && audit.contains("1 written"),
        "the repair in the audit log: {audit}"
    );
    console.stop().await;
    drop(indexer);
}
