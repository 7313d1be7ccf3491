//! The users file is read again while the registry runs: a user added to the file can call
//! it without a restart, and a file that does not parse keeps the users it replaced.
//!
//! The registry runs in-process through `anineplus_registry::run`, as the binary runs it,
//! on a users file in a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anineplus_registry::Config;
use common::{ADMIN, database};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LATE: (&str, &str) = ("late", "late-password");

fn users_file(users: &[(&str, &str)]) -> String {
    let entries: Vec<_> = users
        .iter()
        .map(|(u, p)| json!({"username": u, "algorithm": "plain", "password": p}))
        .collect();
    let permissions: Vec<_> = users
        .iter()
        .map(|(u, _)| json!({"username": u, "operation": "Read", "resource": "Subject:*"}))
        .collect();
    serde_json::to_string_pretty(&json!({"users": entries, "permissions": permissions})).unwrap()
}

/// A directory of its own for one test's users file, removed afterwards.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "registry-reload-{name}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("users.json")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Replaces the file's contents in one step (write aside, rename), as editors and config
/// management do.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// A registry started by `run` on `config`, and the URL it listens on.
async fn start(mut config: Config) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.listen = free.local_addr().unwrap();
    drop(free);
    let url = format!("http://{}", config.listen);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        anineplus_registry::run(config, stop)
            .await
            .expect("registry ran");
    });
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{url}/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (url, shutdown, task)
}

async fn status(url: &str, (user, password): (&str, &str)) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/subjects"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// Polls until `user` gets `expected`, for at most `within`; the time it took.
async fn wait_for(url: &str, user: (&str, &str), expected: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = status(url, user).await;
        if got == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "user '{}' still gets {got}, not {expected}, {:?} after the users file changed",
            user.0,
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_changed_users_file_is_reloaded_and_a_broken_one_keeps_the_old_users() {
    let db = database().await;
    let dir = Dir::new("mtime");
    let path = dir.file();
    replace(&path, &users_file(&[ADMIN]));
    let mut config = Config::for_database(&db.url);
    config.auth_file = Some(path.clone());
    config.auth_reload_secs = 1;
    let (url, shutdown, task) = start(config).await;

    assert_eq!(status(&url, ADMIN).await, 200);
    assert_eq!(status(&url, LATE).await, 401, "not in the file yet");

    replace(&path, &users_file(&[ADMIN, LATE]));
    let took = wait_for(&url, LATE, 200, Duration::from_secs(10)).await;
    println!("a user added to the file could call after {took:?}");

    // A file cut off mid-write does not parse: the users loaded before stay.
    let text = users_file(&[ADMIN]);
    replace(&path, &text[..text.len() / 2]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status(&url, LATE).await, 200, "old users kept");
    assert_eq!(status(&url, ADMIN).await, 200, "old users kept");

    // Fixed again, without LATE: LATE is refused.
    replace(&path, &users_file(&[ADMIN]));
    wait_for(&url, LATE, 401, Duration::from_secs(10)).await;
    assert_eq!(status(&url, ADMIN).await, 200);

    shutdown.cancel();
    task.await.unwrap();
    db.remove().await;
}

#[tokio::test]
async fn sighup_reloads_the_users_file() {
    let db = database().await;
    let dir = Dir::new("sighup");
    let path = dir.file();
    replace(&path, &users_file(&[ADMIN]));
    let mut config = Config::for_database(&db.url);
    config.auth_file = Some(path.clone());
    // Only the signal reloads within this test's time.
    config.auth_reload_secs = 3600;
    let (url, shutdown, task) = start(config).await;
    assert_eq!(status(&url, LATE).await, 401);

    replace(&path, &users_file(&[ADMIN, LATE]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status(&url, LATE).await,
        401,
        "no reload without the signal"
    );
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let took = wait_for(&url, LATE, 200, Duration::from_secs(5)).await;
    println!("after SIGHUP the added user could call after {took:?}");

    shutdown.cancel();
    task.await.unwrap();
    db.remove().await;
}
