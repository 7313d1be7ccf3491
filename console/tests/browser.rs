//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver with fantoccini, on the real stack.
//!
//! Scenario: two users sign up through the API (served in-process on the test's database);
//! an admin makes one an OPERATOR in the database. The other, a USER, signs in on the
//! console's form and is refused with a 403 page; a wrong password is refused by the API.
//! The operator signs in with email and password (the console gets the token from the
//! API's `login`), sees the indexer's lag per partition, finds the two groups of
//! dead letters made by the test (three left by a search-engine outage, now over; two
//! undecodable records), previews and runs a redrive of the outage group and watches it end
//! with "succeeded 3 / returned 0", redrives the undecodable group ("succeeded 0 /
//! returned 2"), purges what is resolved (5 deleted, the 2 returns kept), and finds the
//! three writes on the audit page. A form posted without its CSRF token is refused. An
//! admin then signs in with a token of the API pasted as it is. Last, with the indexer
//! stopped, a record it has not read is skipped from the pipelines page ("skip one poison
//! record": its group's offset moves past it, audited) and the lag is 0 again.
//! chromedriver runs on a free loopback port, started by the test; a missing browser or
//! driver fails the test (scripts/browser-deps.sh installs them).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anineplus_api::domain::Role;
use anineplus_schemas::Topic;
use anineplus_testkit::TestDatabase;
use common::Harness;
use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("chromedriver does not start ({e}): run scripts/browser-deps.sh (Debian's chromium and chromium-driver)"));
    // Owned by the guard at once: killed and waited for on every path, a panic included.
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/status", driver.url)).await.is_ok() {
            println!("chromedriver listening on {}", driver.url);
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {} within 10 s", driver.url);
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

async fn text(c: &Client, css: &str) -> String {
    let found = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(el) => el.text().await.unwrap(),
        Err(e) => {
            let page = c.source().await.unwrap_or_default();
            panic!("no {css} on {:?}: {e}\n{page}", c.current_url().await.ok())
        }
    }
}

/// Signs in on the console's form with an email and password (checked by the API).
async fn sign_in(c: &Client, url: &str, email: &str, password: &str) {
    c.goto(&format!("{url}/sign-in")).await.unwrap();
    c.find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

const SIGN_UP: &str = "mutation($input: SignUpInput!) { signUp(input: $input) { token } }";

/// Signs `email` up through the API.
async fn sign_up(api: &common::indexer::api::Api, email: &str) {
    let input =
        serde_json::json!({ "input": { "email": email, "name": "Test", "password": PASSWORD } });
    api.gql(SIGN_UP, input, None, "console-browser-sign-up")
        .await;
}

const PASSWORD: &str = "a-long-password-1";

/// Polls the page's text until it contains `want` (the page refreshes itself).
async fn wait_text(c: &Client, css: &str, want: &str) -> String {
    let mut seen = String::new();
    for _ in 0..150 {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            seen = el.text().await.unwrap_or_default();
            if seen.contains(want) {
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{css} never showed {want:?}; last: {seen:?}");
}

/// With `CONSOLE_SCREENSHOTS=<dir>`, saves the page as `<dir>/<name>.png` (the pictures
/// of docs/console.md are taken so).
async fn shot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.expect("a screenshot");
    let path = std::path::Path::new(&dir).join(format!("{name}.png"));
    std::fs::write(&path, png).expect("screenshot written");
    println!("screenshot {}", path.display());
}

/// Previews the redrive of the group whose row mentions `cause`, checks the preview's
/// total, confirms; returns once on the job's page.
async fn redrive(c: &Client, url: &str, cause: &str, total: i64) {
    c.goto(&format!("{url}/dead-letters?pipeline=indexer"))
        .await
        .unwrap();
    let row = format!("//tr[contains(@class, 'group')][contains(., '{cause}')]");
    let button = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(&format!("{row}//button")))
        .await
        .unwrap_or_else(|e| panic!("no group of {cause:?} to redrive: {e}"));
    button.click().await.unwrap();
    assert_eq!(
        text(c, "#preview-total").await,
        total.to_string(),
        "the dry run's count"
    );
    shot(c, &format!("preview-{}", total)).await;
    c.find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text(c, "#progress").await;
    println!(
        "redrive of {cause:?} ({total}) started: {}",
        c.current_url().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_redrives_dead_letters_in_a_real_browser() {
    let t = Harness::new().await;
    let db = TestDatabase::create("console_browser").await;
    let indexer = t.start_indexer().await;
    // The API and the console share the database, as on the stack (the console in its schema).
    let api = common::indexer::api::Api::start(&t, &db).await;
    let console = common::serve(common::config(
        &t,
        &db,
        indexer.running.metrics_addr,
        &api.url,
    ))
    .await;
    let (operator, user) = (
        format!("{}@op.example", anineplus_testkit::unique("op")),
        format!("{}@user.example", anineplus_testkit::unique("u")),
    );
    sign_up(&api, &operator).await;
    sign_up(&api, &user).await;
    let api_pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let changed =
        sqlx::query("UPDATE users SET role = 'OPERATOR', version = version + 1 WHERE email = $1")
            .bind(&operator)
            .execute(&api_pool)
            .await
            .unwrap()
            .rows_affected();
    assert_eq!(changed, 1, "the operator's row");
    api_pool.close().await;
    let dlq = t.dlq();
    t.send_raw(Topic::Anime, "junk-1", b"garbage one").await;
    t.send_raw(Topic::Anime, "junk-2", b"more garbage").await;
    let outage = common::outage_letters(&t, "outage", 3).await;
    common::wait_indexed(&console.pool, &dlq, 5).await;

    let driver = driver().await;
    let c = browser(&driver).await;
    let url = &console.url;

    // Anyone but an operator or an admin is refused.
    sign_in(&c, url, &user, PASSWORD).await;
    let refusal = text(&c, "p.error").await;
    assert!(
        refusal.contains("Forbidden: your role is USER"),
        "{refusal}"
    );
    c.goto(&format!("{url}/dead-letters")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/sign-in"),
        "no session, no page"
    );
    println!("a USER is refused: {refusal}");

    // The operator sees the indexer's lag per partition.
    sign_in(&c, url, &operator, "wrong-password").await;
    let wrong = text(&c, "p.error").await;
    assert!(wrong.contains("The API refused the sign-in"), "{wrong}");
    sign_in(&c, url, &operator, PASSWORD).await;
    let lag = wait_text(&c, "#pipeline-indexer", &t.topic(Topic::Anime)).await;
    assert!(lag.contains("total lag"), "{lag}");
    assert!(
        c.find(Locator::Css("#pipeline-indexer svg.lag-chart"))
            .await
            .is_ok(),
        "the lag chart"
    );
    let partitions = c
        .find_all(Locator::Css("#pipeline-indexer td.lag"))
        .await
        .unwrap();
    assert_eq!(
        partitions.len(),
        3,
        "one row per partition of the anime topic"
    );
    shot(&c, "pipelines").await;
    println!(
        "pipelines page: {}",
        lag.lines().take(3).collect::<Vec<_>>().join(" | ")
    );

    // The groups made by the test.
    c.goto(&format!("{url}/dead-letters?pipeline=indexer"))
        .await
        .unwrap();
    let groups = text(&c, "#groups").await;
    assert!(groups.contains("retryable: sink: unavailable: connection refused to <n>.<n>.<n>.<n>:<n> after <n> attempts"), "{groups}");
    assert!(
        groups.contains("permanent: decode: record starts with byte <n>"),
        "{groups}"
    );
    shot(&c, "dead-letters").await;
    println!("groups:\n{groups}");

    // One letter inspected: headers, decoded payload, reason.
    c.goto(&format!(
        "{url}/dead-letters/list?pipeline=indexer&key=outage-1"
    ))
    .await
    .unwrap();
    c.find(Locator::Css("table.letters a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let inspected = text(&c, "#inspect").await;
    assert!(
        inspected.contains("value (decoded)") && inspected.contains("Title 1"),
        "{inspected}"
    );
    assert!(text(&c, ".reason").await.contains("connection refused"));

    // The outage is over: its group succeeds.
    redrive(&c, url, "sink: unavailable", 3).await;
    let outcome = wait_text(&c, "#progress", "succeeded 3 / returned 0").await;
    assert!(outcome.contains("done"), "{outcome}");
    for id in &outage {
        t.wait_doc("anime", id, |v, _| v == 1).await;
    }
    shot(&c, "job").await;
    println!("outage group: {outcome}");

    // The undecodable records come back.
    redrive(&c, url, "permanent: decode", 2).await;
    let outcome = wait_text(&c, "#progress", "succeeded 0 / returned 2").await;
    println!("undecodable group: {outcome}");
    let returns = wait_text(&c, "#progress table.letters", "junk-2").await;
    assert!(
        returns.contains("junk-1"),
        "the two returns are linked: {returns}"
    );

    // A write without the form's CSRF token is refused, even with the session cookie.
    let cookie = c
        .get_named_cookie(anineplus_console::auth::COOKIE)
        .await
        .unwrap();
    let forged = reqwest::Client::new()
        .post(format!("{url}/purge"))
        .header("cookie", format!("{}={}", cookie.name(), cookie.value()))
        .form(&[("pipeline", "indexer"), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "no CSRF token");

    // Purge what is resolved.
    c.goto(&format!("{url}/dead-letters?pipeline=indexer"))
        .await
        .unwrap();
    c.find(Locator::Id("purge"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&c, "#purge-deleted").await, "5");
    assert_eq!(text(&c, "#purge-kept").await, "2");
    c.find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let purged = text(&c, "#purged").await;
    assert!(purged.contains("Deleted 5"), "{purged}");
    println!("{purged}");

    // The audit log has the three writes.
    c.goto(&format!("{url}/audit")).await.unwrap();
    let audit = text(&c, "#audit").await;
    let actions: Vec<String> = {
        let mut out = Vec::new();
        for el in c.find_all(Locator::Css("#audit td.action")).await.unwrap() {
            out.push(el.text().await.unwrap());
        }
        out
    };
    assert_eq!(actions, vec!["purge", "redrive", "redrive"], "{audit}");
    assert!(audit.contains("OPERATOR"), "{audit}");
    shot(&c, "audit").await;
    println!("audit:\n{audit}");

    // Skip one poison record: the pipeline stopped (its group has no member), a record it
    // has not read waits in its partition; the operator skips it and the lag is gone.
    indexer.stop().await;
    t.send_raw(Topic::Anime, "poison", b"poison").await;
    c.goto(url).await.unwrap();
    let skip = "//section[@id='pipeline-indexer']//form[contains(@class, 'skip')]//button";
    let mut clicked = false;
    for _ in 0..100 {
        // The section refreshes every 2 s: a button found just before may be replaced.
        if let Ok(button) = c.find(Locator::XPath(skip)).await
            && button.click().await.is_ok()
        {
            clicked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(clicked, "no skip button for the waiting record");
    let confirm = text(&c, ".confirm").await;
    assert!(confirm.contains("Skip the record at"), "{confirm}");
    c.find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let skipped = text(&c, "#skipped").await;
    assert!(skipped.contains("now starts"), "{skipped}");
    c.goto(url).await.unwrap();
    wait_text(&c, "#pipeline-indexer .total-lag", "0").await;
    c.goto(&format!("{url}/audit")).await.unwrap();
    let first = text(&c, "#audit td.action").await;
    assert_eq!(first, "skip", "the skip is audited");
    println!("{skipped}");

    // An admin may use the console too, here with a token of the API pasted as it is.
    c.goto(&format!("{url}/sign-out")).await.unwrap();
    c.goto(&format!("{url}/sign-in")).await.unwrap();
    let admin = common::token(Role::Admin);
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&admin)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let who = text(&c, "nav .who").await;
    assert!(who.contains("(ADMIN)"), "{who}");
    println!("an admin signed in with a token: {who}");

    c.close().await.unwrap();
    drop(driver);
    console.stop().await;
    api.stop().await;
    t.cleanup().await;
    db.remove().await;
}
