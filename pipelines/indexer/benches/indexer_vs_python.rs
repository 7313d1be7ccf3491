//! The indexer against a well-written Python peer, on the same events, the same engine and
//! the same writes, side by side in one run.
//!
//! `BENCH_EVENTS` `anime.updated` events (default 100,000) are produced once to a topic of
//! 3 partitions. Two arms index them, each into fresh indices made from the same templates
//! (`IndexSpec::ensure`), in the order ours, peer, peer, ours (`BENCH_PYTHON_ROUNDS` pairs,
//! default 1 pair each way), after a 10,000-document warm-up load into a throwaway index:
//!
//! - **ours**: the `anineplus-indexer` binary, spawned as production runs it; documents/s
//!   with the clock from its first consumed record (the binary's own
//!   `pipeline_first_record_timestamp_seconds`) to the scrape of its `/metrics` (every
//!   20 ms) that shows every record settled.
//! - **peer**: `scripts/bench/python_indexer.py` (confluent-kafka `consume(1000)`, fastavro
//!   with the writer schema parsed once, orjson bodies, one bulk in flight), one process
//!   per partition; documents/s with the clock from the first record any of them got to the
//!   last one's end. It sends the same writes: before the timed arms the bench has it write
//!   the bulk body of 1,000 records without sending it and compares it, byte for byte, with
//!   what the indexer's own encoder (`search_sink::request::encode` of `Documents::anime`)
//!   makes of the same events; and the same follow-up per bulk as the indexer's sink (a
//!   refresh and a search of the comments index).
//!
//! After each arm the anime index is refreshed and counted: every arm must have indexed
//! every event, or the bench fails. Figures:
//!
//! - `indexer_vs_python_ratio`: our mean docs/s ÷ the peer's.
//! - `indexer_cpu_us_per_doc`, `python_cpu_us_per_doc`: CPU seconds (utime + stime of
//!   `/proc/<pid>/stat`, every thread; start-up included, read once every record is settled)
//!   ÷ documents, the peer's summed over its processes; `..._steady_cpu_us_per_doc` counts
//!   from the first consumed record instead (no start-up; ours from the scrape that
//!   finds it, at most 20 ms later).
//! - `indexer_vs_python_cpu_ratio`: ours ÷ the peer's (whole-process figures).
//! - `indexer_vs_python_docs_per_s`, `python_indexer_docs_per_s`: the arms' rates.
//! - `indexer_start_to_first_record_ms`: from spawning the binary to its first consumed
//!   record (`pipeline_first_record_timestamp_seconds`, on the same clock), on a fresh
//!   group (the group join included) with its indices already made (the bench makes them
//!   before either arm starts), the faster of its runs: the first run also creates the
//!   pipeline's retry and dead-letter topics, so the later ones start as a restart does.
//!   Goal < 500.
//!
//! The Python interpreter is `BENCH_PYTHON`, else `.stack/bench-venv/bin/python`, the venv
//! `scripts/bench/python-env.sh` makes (`make bench` runs it). Every index, template and
//! topic the bench made is deleted at the end.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anineplus_connectors::search;
use anineplus_connectors::search_sink::BulkService;
use anineplus_connectors::search_sink::request::{self, BulkLimits};
use anineplus_indexer::documents::Documents;
use anineplus_indexer::indices::{self, Index};
use anineplus_schemas::events::samples;
use anineplus_schemas::{Codec, Topic};
use anineplus_testkit::{Stack, bench, topics, unique};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PARTITIONS: i32 = 3;
const BULK: usize = 1000;
const WARM_UP_DOCS: usize = 10_000;
const CHECKED: usize = 1000;

/// What one arm did.
struct Run {
    docs_per_s: f64,
    /// CPU seconds of the whole process(es) when every record was settled.
    cpu: f64,
    /// CPU seconds from the first consumed record to then.
    steady_cpu: f64,
    /// Seconds from the spawn to the first consumed record (ours only: NaN for the peer).
    startup: f64,
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::var_os("BENCH_PYTHON")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let stack = std::env::var_os("STACK_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| repo().join(".stack"), std::path::PathBuf::from);
            stack.join("bench-venv/bin/python")
        });
    anyhow::ensure!(
        path.exists(),
        "no Python for the peer at {}: run `bash scripts/bench/python-env.sh` (make bench does)",
        path.display()
    );
    Ok(path)
}

/// Fails unless the anime index under `prefix` holds exactly `n` documents.
async fn check_count(
    client: &Elasticsearch,
    prefix: &str,
    n: usize,
    arm: &str,
) -> anyhow::Result<()> {
    let alias = Index::Anime.alias(prefix);
    search::call_json(client, Method::Post, &format!("/{alias}/_refresh"), None).await?;
    let count =
        search::call_json(client, Method::Get, &format!("/{alias}/_count"), None).await?["count"]
            .as_u64()
            .unwrap_or(0);
    anyhow::ensure!(
        count == n as u64,
        "{arm}: {count} documents in {alias}, expected {n}"
    );
    Ok(())
}

/// The value of sample `name` (labelled) in a Prometheus text exposition.
fn sample<T: std::str::FromStr>(text: &str, name: &str) -> Option<T> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Seconds since the Unix epoch (the clock of the binary's timestamp gauges).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Stops `child` with SIGTERM (drain, commit), killed if still running after 10 s.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// The `anineplus-indexer` binary over the topics under `topic_prefix` into fresh indices
/// under `index_prefix`, until it settled `n` records.
async fn ours(
    stack: &Stack,
    client: &Elasticsearch,
    http: &reqwest::Client,
    topic_prefix: &str,
    index_prefix: &str,
    n: usize,
) -> anyhow::Result<Run> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The indices exist before either arm starts (as for the peer): the binary's own set-up
    // then only finds them, as on any restart.
    indices::create_all(client, index_prefix).await?;
    let spawned = unix_now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anineplus-indexer"))
        .env("RUST_LOG", "warn,rdkafka=error")
        .args(["--kafka-brokers", &stack.kafka_brokers])
        .args(["--elasticsearch-url", &stack.search_url])
        .args(["--schema-registry-url", &stack.registry_url])
        .args(["--group", &unique("bench-indexer")])
        .args(["--index-prefix", index_prefix])
        .args(["--topic-prefix", topic_prefix])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .args(["--bulk-docs", &BULK.to_string()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().expect("just spawned");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = async || -> Option<String> { http.get(&url).send().await.ok()?.text().await.ok() };
    // The binary stamps its first consumed record itself, so the bench polls it as seldom
    // as at the end: each scrape costs the indexer CPU that the peer does not pay, and 20 ms
    // apart keeps that under 1 % of it and the clock within 1 % of a multi-second arm.
    let every = Duration::from_millis(20);
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = loop {
        let stamp = scrape()
            .await
            .and_then(|t| sample::<f64>(&t, "pipeline_first_record_timestamp_seconds"));
        if let Some(first) = stamp.filter(|s| *s > 0.0) {
            break first;
        }
        anyhow::ensure!(Instant::now() < deadline, "the indexer consumed nothing");
        tokio::time::sleep(every).await;
    };
    let startup = first - spawned;
    let cpu_at_first = bench::cpu_seconds(pid);
    loop {
        let sunk = scrape()
            .await
            .and_then(|t| sample::<u64>(&t, "pipeline_records_sunk_total"));
        if sunk.unwrap_or(0) >= n as u64 {
            break;
        }
        anyhow::ensure!(
            unix_now() - first < 600.0,
            "the indexer did not settle {n} records"
        );
        tokio::time::sleep(every).await;
    }
    let elapsed = unix_now() - first;
    let cpu = bench::cpu_seconds(pid);
    stop(&mut child).await;
    Ok(Run {
        docs_per_s: n as f64 / elapsed,
        cpu,
        steady_cpu: cpu - cpu_at_first,
        startup,
    })
}

/// A peer process for one partition of `topic`.
fn peer_process(
    stack: &Stack,
    topic: &str,
    partition: i32,
    group: &str,
    index_prefix: &str,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let script = repo().join("scripts/bench/python_indexer.py");
    Ok(Command::new(python()?)
        .arg(script)
        .args(["--brokers", &stack.kafka_brokers])
        .args(["--registry-url", &stack.registry_url])
        .args(["--search-url", &stack.search_url])
        .args(["--topic", topic])
        .args(["--partition", &partition.to_string()])
        .args(["--group", group])
        .args(["--index-prefix", index_prefix])
        .args(["--bulk", &BULK.to_string()])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?)
}

/// The peer, one process per partition, into fresh indices under `index_prefix`.
async fn peer(
    stack: &Stack,
    client: &Elasticsearch,
    topic: &str,
    index_prefix: &str,
    n: usize,
) -> anyhow::Result<Run> {
    indices::create_all(client, index_prefix).await?;
    let group = unique("bench-python");
    let mut children = Vec::new();
    for partition in 0..PARTITIONS {
        children.push(peer_process(
            stack,
            topic,
            partition,
            &group,
            index_prefix,
            &[],
        )?);
    }
    // Per process: when its first record came, its CPU then, when it ended, its CPU then,
    // and its counts.
    let mut runs = Vec::new();
    for child in &mut children {
        let pid = child.id().expect("just spawned");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        runs.push(async move {
            let mut first = None;
            while let Some(line) = lines.next_line().await? {
                if line == "first" {
                    first = Some((Instant::now(), bench::cpu_seconds(pid)));
                } else if line.starts_with('{') {
                    let end = (Instant::now(), bench::cpu_seconds(pid));
                    let counts: Value = serde_json::from_str(&line)?;
                    let first = first
                        .ok_or_else(|| anyhow::anyhow!("peer ended before its first record"))?;
                    return Ok::<_, anyhow::Error>((first, end, counts));
                }
            }
            anyhow::bail!("peer process {pid} exited without its counts")
        });
    }
    let ended = tokio::time::timeout(Duration::from_secs(900), futures::future::join_all(runs))
        .await
        .map_err(|_| anyhow::anyhow!("the peer did not finish within 15 minutes"))?;
    for child in &mut children {
        drop(child.stdin.take()); // it commits and exits
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    let ended = ended.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let started = ended
        .iter()
        .map(|(f, _, _)| f.0)
        .min()
        .expect("3 processes");
    let finished = ended
        .iter()
        .map(|(_, e, _)| e.0)
        .max()
        .expect("3 processes");
    let docs: u64 = ended
        .iter()
        .map(|(_, _, c)| c["docs"].as_u64().unwrap_or(0))
        .sum();
    let failed: u64 = ended
        .iter()
        .map(|(_, _, c)| c["failed"].as_u64().unwrap_or(0))
        .sum();
    anyhow::ensure!(
        docs == n as u64 && failed == 0,
        "peer: {docs} documents applied, {failed} failed, of {n}"
    );
    Ok(Run {
        docs_per_s: n as f64 / (finished - started).as_secs_f64(),
        cpu: ended.iter().map(|(_, e, _)| e.1).sum(),
        steady_cpu: ended.iter().map(|(f, e, _)| e.1 - f.1).sum(),
        startup: f64::NAN,
    })
}

/// Has the peer write the bulk body of the first [`CHECKED`] records of partition 0 without
/// sending it, and compares it byte for byte with what the indexer's encoder makes of the
/// same events.
async fn same_writes(stack: &Stack, topic: &str) -> anyhow::Result<usize> {
    let prefix = unique("bench-check");
    let dump = std::env::temp_dir().join(format!("{prefix}.ndjson"));
    let dump_arg = dump.to_string_lossy().into_owned();
    let limit = CHECKED.to_string();
    let mut child = peer_process(
        stack,
        topic,
        0,
        &unique("bench-python-check"),
        &prefix,
        &["--dump", &dump_arg, "--limit", &limit],
    )?;
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await??;
    anyhow::ensure!(status.success(), "the peer's --dump run failed: {status}");
    let theirs = std::fs::read(&dump)?;
    let _ = std::fs::remove_file(&dump);
    let docs = Documents::new(&prefix);
    let (mut ours, mut checked) = (Vec::new(), 0);
    let mut lines = theirs.split_inclusive(|b| *b == b'\n');
    while let Some(action) = lines.next() {
        let id = serde_json::from_slice::<Value>(action)?["update"]["_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("peer action without an update _id"))?;
        let n: u64 = id.trim_start_matches("anime-").parse()?;
        for doc in docs.anime(samples::anime_updated(n)) {
            request::encode(&doc, &mut ours);
        }
        lines.next();
        checked += 1;
    }
    anyhow::ensure!(checked > 0, "the peer wrote an empty body");
    if ours != theirs {
        let a = String::from_utf8_lossy(&ours);
        let b = String::from_utf8_lossy(&theirs);
        let (a, b) = a
            .lines()
            .zip(b.lines())
            .find(|(a, b)| a != b)
            .unwrap_or(("(length)", "(length)"));
        anyhow::bail!("the peer's writes differ from ours:\n ours:   {a}\n theirs: {b}");
    }
    Ok(checked)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    stack.kafka().await?;
    stack.registry().await?;
    stack.search().await?;
    python()?;
    let n = bench::size("BENCH_EVENTS", 100_000);
    let rounds = bench::size("BENCH_PYTHON_ROUNDS", 1).max(1);
    let codec = Codec::new(&stack.registry_url);
    let prefix = format!("{}.", unique("bench"));
    let topic = format!("{prefix}anime");
    topics::create(&stack.kafka_brokers, &topic, PARTITIONS).await?;
    let id = codec.register(Topic::Anime).await?;
    let records = (0..n).map(|i| {
        let e = samples::anime_updated(i as u64);
        let value = anineplus_schemas::codec::encode_with_id(id, &e).expect("sample encodes");
        (e.aggregate_id, value)
    });
    topics::produce(&stack.kafka_brokers, &topic, records).await?;
    eprintln!("bench: {n} events on {topic}");
    let client = search::client(&stack.search_url, Duration::from_secs(30))?;
    let mut index_prefixes = Vec::new();
    let result = run(
        &stack,
        &client,
        &prefix,
        &topic,
        n,
        rounds,
        &mut index_prefixes,
    )
    .await;
    common::clean_up(&stack, &client, &prefix, &index_prefixes).await;
    result
}

async fn run(
    stack: &Stack,
    client: &Elasticsearch,
    prefix: &str,
    topic: &str,
    n: usize,
    rounds: usize,
    index_prefixes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let checked = same_writes(stack, topic).await?;
    eprintln!("bench: the peer's bulk body of {checked} records equals ours byte for byte");

    let warm = unique("bench-warm");
    index_prefixes.push(warm.clone());
    indices::create_all(client, &warm).await?;
    let service = BulkService::new(client.clone());
    let docs = Documents::new(&warm);
    let warm_docs: Vec<_> = (0..n.min(WARM_UP_DOCS))
        .flat_map(|i| docs.anime(samples::anime_updated(i as u64)))
        .collect();
    let limits = BulkLimits {
        max_docs: BULK,
        max_bytes: usize::MAX,
    };
    for r in request::build(&warm_docs, limits) {
        service.send(&r).await;
    }
    indices::drop_all(client, &warm).await;

    let http = reqwest::Client::builder().no_proxy().build()?;
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for arm in ["ours", "peer", "peer", "ours"] {
            let p = unique(if arm == "ours" {
                "bench-ix"
            } else {
                "bench-py"
            });
            index_prefixes.push(p.clone());
            let run = if arm == "ours" {
                ours(stack, client, &http, prefix, &p, n).await?
            } else {
                peer(stack, client, topic, &p, n).await?
            };
            check_count(client, &p, n, arm).await?;
            eprintln!(
                "bench: {arm}: {:.0} docs/s, {:.2} µs CPU per doc ({:.2} from the first record), first record {:.0} ms after the spawn; {} load average",
                run.docs_per_s,
                run.cpu * 1e6 / n as f64,
                run.steady_cpu * 1e6 / n as f64,
                run.startup * 1e3,
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .trim()
            );
            indices::drop_all(client, &p).await;
            if arm == "ours" {
                &mut mine
            } else {
                &mut theirs
            }
            .push(run);
        }
    }
    let mean =
        |runs: &[Run], f: fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
    let per_doc = |cpu: f64| cpu * 1e6 / n as f64;
    let (our_rate, their_rate) = (
        mean(&mine, |r| r.docs_per_s),
        mean(&theirs, |r| r.docs_per_s),
    );
    let (our_cpu, their_cpu) = (
        per_doc(mean(&mine, |r| r.cpu)),
        per_doc(mean(&theirs, |r| r.cpu)),
    );
    let figures = [
        ("indexer_vs_python_ratio", our_rate / their_rate),
        ("indexer_vs_python_cpu_ratio", our_cpu / their_cpu),
        ("indexer_cpu_us_per_doc", our_cpu),
        ("python_cpu_us_per_doc", their_cpu),
        (
            "indexer_steady_cpu_us_per_doc",
            per_doc(mean(&mine, |r| r.steady_cpu)),
        ),
        (
            "python_steady_cpu_us_per_doc",
            per_doc(mean(&theirs, |r| r.steady_cpu)),
        ),
        (
            "indexer_start_to_first_record_ms",
            mine.iter()
                .map(|r| r.startup * 1e3)
                .fold(f64::INFINITY, f64::min),
        ),
        ("indexer_vs_python_docs_per_s", our_rate),
        ("python_indexer_docs_per_s", their_rate),
    ];
    let line: Vec<String> = figures.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    println!(
        "indexer_vs_python: {n} anime.updated events: {}",
        line.join(", ")
    );
    bench::record(&figures)?;
    Ok(())
}
