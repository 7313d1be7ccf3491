//! What one log call costs with shipping to Kafka, against the same subscriber without the
//! shipping layer, in one run.
//!
//! A subscriber as the services build it (the JSON lines layer, here writing to a sink
//! instead of stdout, so the terminal is not measured) logs `BENCH_LOG_CALLS` events
//! (default 200,000) in a tight loop on one thread, each inside a request span with a
//! correlation id and with three fields, in rounds (plain, shipped, shipped, plain).
//!
//! - `log_call_ns_shipped`, `log_call_ns_plain`: wall time of the calls per event on the
//!   logging thread (what a request pays).
//! - `log_ship_cpu_ns_per_record`: CPU of the whole process (every thread: the drain
//!   encoding Avro, librdkafka's threads compressing and sending) per shipped record,
//!   above the plain arm's, counted until Kafka acknowledged every record.
//!
//! The queue is sized to hold a whole round, so no record is dropped for a full queue. The
//! bench runs on mimalloc, as the API and the indexer do: a record is allocated on the
//! logging thread and freed on the drain's, which glibc's arenas serialise on a lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_telemetry::ship::{self, ShipConfig};
use anineplus_testkit::{Stack, bench, topics, unique};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn calls(n: usize) {
    let span = tracing::info_span!("request", correlation_id = "bench-1", path = "/graphql");
    let _in = span.enter();
    for i in 0..n {
        tracing::info!(
            operation = "postComment",
            elapsed_ms = i % 97,
            errors = 0,
            "graphql operation"
        );
    }
}

fn lines() -> impl tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync {
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::sink)
}

/// (ns per call on the logging thread, process CPU ns per record).
async fn plain(n: usize) -> (f64, f64) {
    let subscriber = tracing_subscriber::registry().with(lines());
    let cpu = bench::cpu_seconds(std::process::id());
    let started = Instant::now();
    tracing::subscriber::with_default(subscriber, || calls(n));
    let wall = started.elapsed();
    let cpu = bench::cpu_seconds(std::process::id()) - cpu;
    (wall.as_nanos() as f64 / n as f64, cpu * 1e9 / n as f64)
}

async fn shipped(stack: &Stack, prefix: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let (layer, shipper, stats) = ship::layer(ShipConfig {
        queue: n + 1000,
        ..ShipConfig::new("bench", &stack.kafka_brokers, &stack.registry_url, prefix)
    });
    let stop = CancellationToken::new();
    let drain = tokio::spawn(shipper.run(stop.clone()));
    // The schema id and the connection first, outside the clock.
    let subscriber = Arc::new(tracing_subscriber::registry().with(lines()).with(layer));
    tracing::subscriber::with_default(subscriber.clone(), || calls(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.shipped() < 1 {
        anyhow::ensure!(Instant::now() < deadline, "the first record never shipped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = bench::cpu_seconds(std::process::id());
    let started = Instant::now();
    tracing::subscriber::with_default(subscriber.clone(), || calls(n));
    let wall = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.shipped() < n as u64 + 1 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "shipped {} of {n} (dropped {})",
            stats.shipped(),
            stats.dropped()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = bench::cpu_seconds(std::process::id()) - cpu;
    drop(subscriber);
    stop.cancel();
    let _ = drain.await;
    Ok((wall.as_nanos() as f64 / n as f64, cpu * 1e9 / n as f64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    stack.kafka().await?;
    stack.registry().await?;
    let n = bench::size("BENCH_LOG_CALLS", 200_000);
    let prefix = format!("{}.", unique("benchship"));
    topics::create(&stack.kafka_brokers, &format!("{prefix}logs"), 3).await?;
    let result = async {
        let (mut plain_arms, mut shipped_arms) = (Vec::new(), Vec::new());
        plain(n / 10).await; // warm-up
        for round in ["plain", "shipped", "shipped", "plain"] {
            let arm = if round == "plain" {
                plain(n).await
            } else {
                shipped(&stack, &prefix, n).await?
            };
            eprintln!(
                "bench: {round}: {:.0} ns per call, {:.0} ns CPU per record",
                arm.0, arm.1
            );
            if round == "plain" {
                plain_arms.push(arm)
            } else {
                shipped_arms.push(arm)
            }
        }
        anyhow::Ok((plain_arms, shipped_arms))
    }
    .await;
    let _ = topics::delete_prefixed(&stack.kafka_brokers, &prefix).await;
    let (plain_arms, shipped_arms) = result?;
    let mean =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    bench::record(&[
        ("log_call_ns_shipped", mean(&shipped_arms, |a| a.0)),
        ("log_call_ns_plain", mean(&plain_arms, |a| a.0)),
        (
            "log_ship_cpu_ns_per_record",
            mean(&shipped_arms, |a| a.1) - mean(&plain_arms, |a| a.1),
        ),
    ])?;
    Ok(())
}
