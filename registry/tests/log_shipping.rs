//! The `anineplus-registry` binary ships its own log records to the `logs` topic, looking
//! the `logs` schema up in itself (it registers it when its subject is still empty), and
//! still serves with shipping on.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::Codec;
use anineplus_schemas::events::LogRecord;
use anineplus_testkit::{Stack, topics, unique};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_binary_ships_its_records_to_the_logs_topic() {
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    let db = common::database().await;
    let prefix = format!("{}.", unique("reglogs"));
    let topic = format!("{prefix}logs");
    topics::create(&stack.kafka_brokers, &topic, 1)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(unique("registry-users"));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.json");
    std::fs::write(
        &users,
        serde_json::json!({
            "users": [{"username": "admin", "algorithm": "plain", "password": "pw"}],
            "permissions": [{"username": "admin", "operation": "Write", "resource": "Subject:*"}]
        })
        .to_string(),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://admin:pw@127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anineplus-registry"))
        .env("REGISTRY_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGISTRY_DATABASE_URL", &db.url)
        .env("REGISTRY_AUTH_FILE", &users)
        .env("KAFKA_BROKERS", &stack.kafka_brokers)
        .env("SCHEMA_REGISTRY_URL", &url)
        .env("TOPIC_PREFIX", &prefix)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .spawn()
        .expect("start anineplus-registry");

    let consumer: StreamConsumer = kafka::consumer_config(&stack.kafka_brokers, &unique("reader"))
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let codec = Codec::new(&url);
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a record of the registry within 60 s")
        .unwrap();
    let record: LogRecord = codec.decode(message.payload().unwrap()).await.unwrap();
    assert_eq!(record.service, "registry");
    assert_eq!(message.key(), Some(&b"registry"[..]));

    // It serves meanwhile: the logs subject is there, registered by its own shipper.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let subjects: Vec<String> = http
        .get(format!("http://127.0.0.1:{port}/subjects"))
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(subjects.contains(&"logs-value".to_owned()), "{subjects:?}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    topics::delete_prefixed(&stack.kafka_brokers, &prefix)
        .await
        .unwrap();
    db.remove().await;
}
