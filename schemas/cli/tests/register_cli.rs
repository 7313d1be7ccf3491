//! `anineplus-schemas register` (what `make up` runs) against a registry that refuses one of
//! our schemas: it must fail, name the subject and the field, and still register the others.
//! The registry runs in-process on a database of its own, so the stack's subjects are not
//! touched.

use std::process::Command;

use std::sync::Arc;

use anineplus_registry::Config;
use anineplus_registry::auth::{Access, AccessFile};
use anineplus_schemas::Topic;
use anineplus_schemas::registry_client::RegistryClient;
use anineplus_testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn register_fails_naming_the_subject_the_registry_refuses() {
    let database = TestDatabase::create("schemas_cli").await;
    let registry = anineplus_registry::connect(&Config::for_database(database.url.clone()))
        .await
        .unwrap();
    // The registry requires credentials to write: the CLI sends those of its URL's userinfo.
    let users: AccessFile = serde_json::from_value(serde_json::json!({
        "users": [{"username": "schemas", "algorithm": "plain", "password": "p@ss word"}],
        "permissions": [{"username": "schemas", "operation": "Write", "resource": "Subject:*"}]
    }))
    .unwrap();
    let access = Arc::new(Access::new(users, false).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let url = format!("http://schemas:p%40ss%20word@{address}");
    let shutdown = CancellationToken::new();
    let server_task = tokio::spawn(anineplus_registry::serve(
        listener,
        registry.clone(),
        access,
        shutdown.clone(),
    ));
    // Without them, the CLI is refused and says so.
    let cli = env!("CARGO_BIN_EXE_anineplus-schemas");
    let anonymous = tokio::task::spawn_blocking(move || {
        Command::new(cli)
            .args(["--registry", &format!("http://{address}"), "register"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!anonymous.status.success());
    let said = String::from_utf8_lossy(&anonymous.stderr).into_owned()
        + &String::from_utf8_lossy(&anonymous.stdout);
    assert!(said.contains("40101"), "{said}");
    assert!(!said.contains("p@ss"), "{said}");

    // An earlier anime schema without `aggregateVersion`: the current one (which requires it,
    // with no default) cannot read its data, so BACKWARD refuses the current one.
    let mut old: serde_json::Value = serde_json::from_str(Topic::Anime.schema()).unwrap();
    old["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "aggregateVersion");
    RegistryClient::new(&url)
        .register("anime-value", &old.to_string())
        .await
        .unwrap();

    let output = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(cli)
                .args(["--registry", &url, "register"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        !output.status.success(),
        "register must fail\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("anime-value") && stderr.contains("aggregateVersion"),
        "{stderr}"
    );
    assert!(
        stdout.contains("registered user-value"),
        "the other subjects are registered: {stdout}"
    );

    let output = tokio::task::spawn_blocking(move || {
        Command::new(cli)
            .args(["--registry", &url, "check"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(stdout.contains("INCOMPATIBLE anime-value"), "{stdout}");
    assert!(stdout.contains("compatible   user-value"), "{stdout}");

    shutdown.cancel();
    server_task.await.unwrap().unwrap();
    registry.store().pool().close().await;
    database.remove().await;
}
