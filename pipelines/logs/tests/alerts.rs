//! Error alerting on the real stack, with two instances of the alerting pipeline in one
//! group: a burst of one service's errors yields exactly one FIRING event on the `alerts`
//! topic (Avro, decoded through the registry) and on the webhook, no storm while it lasts,
//! and one RESOLVED once the window passes without errors; another service's records at
//! INFO alert nothing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_logs::alerts::AlertRules;
use anineplus_logs::{self as logs, AlertsConfig};
use anineplus_schemas::Topic;
use anineplus_schemas::events::{Alert, AlertState, LogLevel};
use common::{World, record};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A webhook receiver: every JSON body POSTed to it.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Waits until `group` is stable with `members` members.
async fn stable(brokers: &str, group: &str, members: usize) {
    let consumer: BaseConsumer = kafka::consumer_config(brokers, "observer")
        .create()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = consumer
            .fetch_group_list(Some(group), Duration::from_secs(5))
            .unwrap();
        if let Some(g) = list.groups().first()
            && g.state() == "Stable"
            && g.members().len() == members
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{group} never stable with {members}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_errors_fires_one_alert_and_one_resolve_across_two_instances() {
    let t = World::new().await;
    let (url, received) = webhook().await;
    let config = AlertsConfig {
        common: t.common(&t.group),
        rules: AlertRules {
            threshold: 5,
            window: Duration::from_secs(4),
            dedupe: Duration::from_secs(600),
        },
        webhook: Some(url),
    };
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (pipeline, _) = logs::prepare_alerts(&config, &stop).await.unwrap();
        tasks.push(tokio::spawn(pipeline.run(stop.clone())));
    }
    stable(&t.stack.kafka_brokers, &t.group, 2).await;

    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..40 {
        let mut error = record(
            "api",
            now + i,
            Some(&format!("req-{i}")),
            &format!("db timeout after {i} ms"),
        );
        error.level = LogLevel::Error;
        error
            .context
            .insert("target".into(), "anineplus_api::db".into());
        t.send("api", &error).await;
        t.send("indexer", &record("indexer", now + i, None, "fine"))
            .await;
    }

    let alerts_topic = t.topic(Topic::Alerts);
    let events = t.read(&alerts_topic, 2).await;
    let decoded: Vec<Alert> = {
        let mut out = Vec::new();
        for (key, value, _) in &events {
            let alert: Alert = t.codec.decode(value).await.unwrap();
            assert_eq!(key.as_deref(), Some(alert.fingerprint.as_bytes()));
            out.push(alert);
        }
        out
    };
    assert_eq!(decoded[0].state, AlertState::Firing, "{decoded:?}");
    assert_eq!(decoded[0].fingerprint, "api/anineplus_api::db");
    assert!(decoded[0].errors > 5, "{decoded:?}");
    assert!(
        decoded[0].sample.starts_with("db timeout after"),
        "{decoded:?}"
    );
    assert_eq!(decoded[1].state, AlertState::Resolved, "{decoded:?}");
    assert_eq!(decoded[1].firing_since, decoded[0].firing_since);
    // Nothing more: one firing, one resolve, from one of the two instances.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        t.committed_by("nobody", &alerts_topic).1,
        2,
        "exactly two alert events"
    );
    let hooks = received.lock().unwrap().clone();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(hooks[0]["state"], "FIRING");
    assert_eq!(hooks[0]["alertId"], decoded[0].alert_id.as_str());
    assert_eq!(hooks[1]["state"], "RESOLVED");

    stop.cancel();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    t.clean().await;
}
