//! The stateful runtime: the cost of exactly once, and the speed of a restore.
//!
//! - `eos_vs_alo_ratio`: one windowed count step (one-hour windows, grace 5 min, emitting
//!   on change: the analytics pipeline's comment counts, with JSON results), run in-process
//!   on the same `BENCH_STATE_RECORDS` deltas (default 200,000, keyed by 2,000 anime, on 3
//!   partitions) with `exactly_once` and with `at_least_once`, both at a 100 ms commit
//!   interval. Each arm's rate is its records ÷ the time from its first consumed record to
//!   its last committed one (its own metrics, polled every 10 ms); arms run ALO, EOS, EOS,
//!   ALO and the means are compared. Goal ≥ 0.7.
//! - `eos_records_per_s`, `alo_records_per_s` (context): the two rates.
//! - `state_restore_records_per_s`: a changelog of `BENCH_RESTORE_RECORDS` records
//!   (default 300,000 distinct keys on 3 partitions) read back into the stores by a fresh
//!   instance: records ÷ `pipeline_state_restore_seconds` (from the restore's start,
//!   its consumer's creation included, to the last partition's end). Goal ≥ 100,000.
//!
//! Every topic the bench made is deleted at the end.

use std::time::{Duration, Instant};

use anineplus_analytics::comments::Delta;
use anineplus_analytics::counts::hourly;
use anineplus_schemas::Codec;
use anineplus_streams::PipelineConfig;
use anineplus_streams::metrics::Metrics;
use anineplus_streams::state::ops::Aggregate;
use anineplus_streams::state::{Guarantee, Output, StatefulConfig, StatefulPipeline};
use anineplus_testkit::{Stack, bench, topics, unique};
use tokio_util::sync::CancellationToken;

const KEYS: usize = 2_000;

fn counts(input: &str, output: &str) -> Aggregate<Delta, i64> {
    let topic = output.to_owned();
    Aggregate::new("counts", input, || 0, |n, d: &Delta| n + d.delta)
        .windowed(hourly())
        .to(&[output], move |r| {
            let (start, _) = r.window.expect("windowed");
            vec![Output::json(&topic, r.key, &(start, *r.value), start)]
        })
}

fn config(stack: &Stack, prefix: &str, name: &str, guarantee: Guarantee) -> StatefulConfig {
    let mut p = PipelineConfig::new(name, &stack.kafka_brokers, &unique("bench-state"));
    p.topic_prefix = prefix.to_owned();
    StatefulConfig::new(p, guarantee)
}

/// Runs `pipeline` until `done(metrics)`; returns the seconds from its first consumed record.
async fn run_until<P: anineplus_streams::state::Processor>(
    pipeline: StatefulPipeline<P>,
    done: impl Fn(&Metrics) -> bool,
) -> f64 {
    let metrics = pipeline.metrics();
    let stop = CancellationToken::new();
    let running = tokio::spawn(pipeline.run(stop.clone()));
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if first.is_none() && Metrics::get(&metrics.consumed) > 0 {
            first = Some(Instant::now());
        }
        if done(&metrics) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bench arm did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    stop.cancel();
    running
        .await
        .expect("the pipeline's task")
        .expect("the pipeline ran");
    elapsed
}

#[tokio::main]
async fn main() {
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    let n = bench::size("BENCH_STATE_RECORDS", 200_000);
    let m = bench::size("BENCH_RESTORE_RECORDS", 300_000);
    let prefix = format!("{}.", unique("bench-state"));
    let input = format!("{prefix}deltas");
    topics::create(&stack.kafka_brokers, &input, 3)
        .await
        .unwrap();
    let delta = serde_json::to_vec(&Delta { delta: 1 }).unwrap();
    topics::produce(
        &stack.kafka_brokers,
        &input,
        (0..n).map(|i| (format!("anime-{}", i % KEYS), delta.clone())),
    )
    .await
    .unwrap();
    eprintln!("bench state: {n} deltas produced");
    let codec = Codec::new(&stack.registry_url);

    let mut rates = std::collections::BTreeMap::<&str, Vec<f64>>::new();
    let arms = [
        ("alo", Guarantee::AtLeastOnce),
        ("eos", Guarantee::ExactlyOnce),
        ("eos", Guarantee::ExactlyOnce),
        ("alo", Guarantee::AtLeastOnce),
    ];
    for (round, (label, guarantee)) in arms.into_iter().enumerate() {
        let name = format!("counts-{round}");
        let output = format!("{prefix}out-{round}");
        let pipeline = StatefulPipeline::new(
            config(&stack, &prefix, &name, guarantee),
            counts(&input, &output),
            codec.clone(),
        );
        let want = n as u64;
        let seconds = run_until(pipeline, |m| Metrics::get(&m.sunk) >= want).await;
        let rate = n as f64 / seconds;
        eprintln!("bench state: {label} round {round}: {rate:.0} records/s ({seconds:.2} s)");
        rates.entry(label).or_default().push(rate);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (eos, alo) = (mean(&rates["eos"]), mean(&rates["alo"]));

    // A changelog of m distinct keys, as a count step's store writes it.
    let changelog = format!("{prefix}restore-counts-changelog");
    topics::create(&stack.kafka_brokers, &changelog, 3)
        .await
        .unwrap();
    let restore_input = format!("{prefix}restore-in");
    topics::create(&stack.kafka_brokers, &restore_input, 3)
        .await
        .unwrap();
    topics::produce(
        &stack.kafka_brokers,
        &changelog,
        (0..m).map(|i| (format!("s:k|anime-{i}"), i.to_string().into_bytes())),
    )
    .await
    .unwrap();
    let table = Aggregate::new(
        "counts",
        &restore_input,
        || 0,
        |n: i64, d: &Delta| n + d.delta,
    );
    let pipeline = StatefulPipeline::new(
        config(&stack, &prefix, "restore", Guarantee::ExactlyOnce),
        table,
        codec.clone(),
    );
    let want = m as u64;
    let metrics = pipeline.metrics();
    run_until(pipeline, |m| Metrics::get(&m.restored) >= want).await;
    let restore = m as f64 / metrics.restore_seconds.get();
    eprintln!(
        "bench state: {m} changelog records restored in {:.2} s",
        metrics.restore_seconds.get()
    );

    bench::record(&[
        ("eos_vs_alo_ratio", eos / alo),
        ("eos_records_per_s", eos),
        ("alo_records_per_s", alo),
        ("state_restore_records_per_s", restore),
    ])
    .unwrap();
    topics::delete_prefixed(&stack.kafka_brokers, &prefix)
        .await
        .unwrap();
}
