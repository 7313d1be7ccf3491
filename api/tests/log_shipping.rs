//! The `anineplus-api` binary ships its logs: each record reaches `<prefix>logs` as Avro
//! through the registry (service `api`, no secret of the request in it) and is counted in
//! `logs_shipped_total`; with Kafka unreachable the API still serves, its log lines still
//! reach stdout as JSON, and the records it could not ship are counted in
//! `logs_dropped_total`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anineplus_schemas::Codec;
use anineplus_schemas::events::LogRecord;
use anineplus_testkit::{Stack, TestDatabase, topics, unique};
use common::{base_args, free_port, wait_binary_live};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct Api {
    child: Child,
    url: String,
    /// Every stdout line so far.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(args: Vec<String>) -> Api {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anineplus-api"))
        .env("RUST_LOG", "info")
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-shipping-timeout-ms", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the API binary starts");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let lines = stdout.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut api = Api {
        child,
        url: format!("http://127.0.0.1:{port}"),
        stdout,
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        wait_binary_live(&http, &api.url, &mut api.child).await,
        "the API binary stopped during start-up"
    );
    api
}

/// `name`'s value in the API's `/metrics`.
async fn counter(url: &str, name: &str) -> u64 {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

async fn sign_up(url: &str, email: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let query = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }";
    let body: Value = http
        .post(format!("{url}/graphql"))
        .json(&json!({"query": query, "variables": {"i": {"email": email, "name": "Fern", "password": PASSWORD}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_binary_ships_its_logs_to_the_logs_topic() {
    let stack = Stack::from_env();
    let db = TestDatabase::create("api_test").await;
    let prefix = format!("{}.", unique("logship"));
    let topic = format!("{prefix}logs");
    topics::create(&stack.kafka_brokers, &topic, 1)
        .await
        .unwrap();
    let api = spawn(base_args(
        &stack,
        &db.url,
        &prefix,
        &format!("{}:", unique("logship")),
    ))
    .await;
    let email = format!("{}@example.org", unique("fern"));
    sign_up(&api.url, &email).await;

    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", unique("logship"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let codec = Codec::new(&stack.registry_url);
    let mut records: Vec<LogRecord> = Vec::new();
    // The start-up lines at least; then whatever the request logged, a little while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            Ok(message) => {
                let message = message.unwrap();
                assert_eq!(message.key(), Some(&b"api"[..]), "keyed by service");
                records.push(codec.decode(message.payload().unwrap()).await.unwrap());
            }
            Err(_) if !records.is_empty() => {
                let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_secs(2));
                if Instant::now() >= until {
                    break;
                }
            }
            Err(_) => assert!(Instant::now() < deadline, "no record in {topic} after 30 s"),
        }
    }
    eprintln!(
        "{} records shipped, the first: {:?}",
        records.len(),
        records[0]
    );
    for record in &records {
        assert_eq!(record.service, "api");
        let text = format!("{record:?}");
        assert!(
            !text.contains(PASSWORD) && !text.contains(&email),
            "a secret was shipped: {text}"
        );
        assert_ne!(
            record.context.get("target").map(String::as_str),
            Some("librdkafka")
        );
    }
    let shipped = counter(&api.url, "logs_shipped_total").await;
    assert!(
        shipped >= records.len() as u64,
        "logs_shipped_total {shipped} < {} records read",
        records.len()
    );
    assert_eq!(counter(&api.url, "logs_dropped_total").await, 0);
    drop(api);
    topics::delete_prefixed(&stack.kafka_brokers, &prefix)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_unreachable_the_api_serves_logs_to_stdout_and_counts_what_it_drops() {
    let stack = Stack::from_env();
    let db = TestDatabase::create("api_test").await;
    let mut args = base_args(
        &stack,
        &db.url,
        &format!("{}.", unique("logdown")),
        &format!("{}:", unique("logdown")),
    );
    let brokers = args.iter().position(|a| a == "--kafka-brokers").unwrap();
    // Port 1 on loopback: nothing listens there.
    args[brokers + 1] = "127.0.0.1:1".to_owned();
    let api = spawn(args).await;
    sign_up(&api.url, &format!("{}@example.org", unique("fern"))).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&api.url, "logs_dropped_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing counted dropped after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(counter(&api.url, "logs_shipped_total").await, 0);
    let lines = api.stdout.lock().unwrap().clone();
    assert!(!lines.is_empty(), "no log line on stdout");
    for line in &lines {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    eprintln!(
        "{} JSON lines on stdout, {} records dropped",
        lines.len(),
        counter(&api.url, "logs_dropped_total").await
    );
}
