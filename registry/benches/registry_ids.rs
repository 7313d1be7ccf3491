//! `GET /schemas/ids/{id}`: the request every consumer makes for each schema id it meets
//! (Confluent clients cache it, but every new consumer process asks again).
//!
//! Starts the registry in-process on an ephemeral port against a fresh database, registers
//! one schema, then 4 keep-alive clients fetch it by id for `BENCH_SECONDS` (default 3).
//! Records `registry_get_schema_by_id_per_s` and `registry_get_schema_by_id_p99_ms`.
//! The schema comes from the in-memory cache after the first request, so this measures the
//! HTTP path, not PostgreSQL.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use anineplus_testkit::bench;
use common::{TestRegistry, anime};
use serde_json::json;

const CLIENTS: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let db = common::database().await;
    let registry = TestRegistry::start(&db.url).await;
    let id = registry
        .register(
            "bench-value",
            &anime(json!([
                {"name": "id", "type": "string"},
                {"name": "title", "type": "string"},
                {"name": "episodes", "type": ["null", "int"], "default": null},
            ])),
        )
        .await;
    let url = format!("{}/schemas/ids/{id}", registry.url);

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let url = url.clone();
        let http = registry.http.clone();
        workers.push(tokio::spawn(async move {
            let client = http.clone();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = client.get(&url).send().await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
                response.bytes().await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let rate = latencies.len() as f64 / elapsed;
    eprintln!(
        "{} requests by {CLIENTS} clients in {elapsed:.2} s",
        latencies.len()
    );
    bench::record(&[
        ("registry_get_schema_by_id_per_s", rate),
        (
            "registry_get_schema_by_id_p99_ms",
            p99.as_secs_f64() * 1000.0,
        ),
    ])?;

    registry.stop().await;
    db.remove().await;
    Ok(())
}
