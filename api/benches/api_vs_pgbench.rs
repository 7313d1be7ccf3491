//! The API's write path against PostgreSQL's own speed, side by side in one run.
//!
//! - `api_vs_pgbench_ratio`: `postComment` mutations per second through the API binary
//!   (HTTP, JWT, rate limiter, validation, one transaction with the comment row and its
//!   outbox row) at a fixed concurrency, divided by `pgbench` running the same two inserts
//!   per transaction at the same concurrency. Goal ≥ 0.6. Every response is checked.
//! - `api_post_comment_per_s`, `pgbench_comment_tps`, `api_post_comment_p50_ms`,
//!   `api_post_comment_p99_ms`.
//! - `api_relay_vs_mutation_rate_ratio`: outbox rows published per second (from the first
//!   mutation until the outbox is empty) divided by the mutation rate. Goal ≥ 1 (the relay
//!   keeps up).
//! - `api_peak_rss_mb`: peak resident memory (VmHWM) of the API process.
//! - `api_cpu_us_per_request`: CPU time of the API process (its relay included) from the
//!   first mutation until the outbox is empty, per mutation; `api_postgres_cpu_us_per_request`
//!   and `pgbench_postgres_cpu_us_per_tx`: PostgreSQL's CPU time (every `postgres` process)
//!   per mutation and per pgbench transaction. CPU per operation is steadier than a rate on
//!   a shared machine, and says which side a change moved.
//!
//! `BENCH_SECS` (default 10) and `BENCH_CONCURRENCY` (default 16) change the run;
//! `BENCH_API_BIN` runs another build of the API binary instead of this one's.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_testkit::{Stack, TestDatabase, bench, unique};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = bench::size("BENCH_SECS", 10) as u64;
    let concurrency = bench::size("BENCH_CONCURRENCY", 16);
    let stack = Stack::from_env();
    let db = TestDatabase::create("api_bench").await;
    let result = run(&stack, &db.url, secs, concurrency).await;
    db.remove().await;
    let Figures {
        api_rate,
        pg_rate,
        p50,
        p99,
        relay_rate,
        rss_mb,
        api_cpu_us,
        api_pg_cpu_us,
        pgbench_pg_cpu_us,
    } = result?;
    println!(
        "api_vs_pgbench: postComment through the API binary vs pgbench's same two inserts, {concurrency} clients for {secs} s each: API {api_rate:.0}/s (p50 {p50:.1} ms, p99 {p99:.1} ms), pgbench {pg_rate:.0} tps, relay {relay_rate:.0} rows/s, API peak RSS {rss_mb:.1} MiB; CPU per mutation: API {api_cpu_us:.0} µs, PostgreSQL {api_pg_cpu_us:.0} µs; PostgreSQL CPU per pgbench transaction {pgbench_pg_cpu_us:.0} µs"
    );
    bench::record(&[
        ("api_vs_pgbench_ratio", api_rate / pg_rate),
        ("api_post_comment_per_s", api_rate),
        ("pgbench_comment_tps", pg_rate),
        ("api_post_comment_p50_ms", p50),
        ("api_post_comment_p99_ms", p99),
        ("api_relay_vs_mutation_rate_ratio", relay_rate / api_rate),
        ("api_peak_rss_mb", rss_mb),
        ("api_cpu_us_per_request", api_cpu_us),
        ("api_postgres_cpu_us_per_request", api_pg_cpu_us),
        ("pgbench_postgres_cpu_us_per_tx", pgbench_pg_cpu_us),
    ])?;
    Ok(())
}

struct Figures {
    api_rate: f64,
    pg_rate: f64,
    p50: f64,
    p99: f64,
    relay_rate: f64,
    rss_mb: f64,
    api_cpu_us: f64,
    api_pg_cpu_us: f64,
    pgbench_pg_cpu_us: f64,
}

/// Kills the API binary on every way out of [`run`].
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(
    stack: &Stack,
    db_url: &str,
    secs: u64,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    // `BENCH_API_BIN` runs another build of the API (e.g. an older commit's) in the same arm.
    let binary = std::env::var("BENCH_API_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_anineplus-api").to_owned());
    let api = Command::new(binary)
        .env("RUST_LOG", "warn")
        .args([
            "--env",
            "dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db_url,
            "--database-max-connections",
            &(concurrency + 4).to_string(),
            "--kafka-brokers",
            &stack.kafka_brokers,
            "--schema-registry-url",
            &stack.registry_url,
            "--redis-url",
            &stack.redis_url,
            "--kafka-topic-prefix",
            &format!("{}.", unique("apibench")),
            "--redis-key-prefix",
            &format!("{}:", unique("apibench")),
            "--rate-limit-requests",
            "1000000000",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let mut api = Child(api);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut live = false;
    for _ in 0..300 {
        if http
            .get(format!("{url}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(live, "the API did not start");

    let data = bench::gql(&http, &url, None,
        "mutation { signUp(input: {email: \"admin@anineplus.local\", name: \"Bench\", password: \"correct horse battery\"}) { token user { id } } }",
        json!({})).await;
    let token = Arc::new(data["signUp"]["token"].as_str().unwrap().to_owned());
    let author = data["signUp"]["user"]["id"].as_str().unwrap().to_owned();
    let data = bench::gql(
        &http,
        &url,
        Some(&token),
        "mutation { createAnime(input: {title: \"Bench\", status: AIRING}) { id } }",
        json!({}),
    )
    .await;
    let anime = data["createAnime"]["id"].as_str().unwrap().to_owned();

    // Arm 1: the API.
    let pool = sqlx::PgPool::connect(db_url).await?;
    let api_cpu_before = bench::cpu_seconds(api.0.id());
    let pg_cpu_before = bench::cpu_seconds_of_all("postgres");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, token, anime) = (http.clone(), url.clone(), token.clone(), anime.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    bench::gql(&http, &url, Some(&token),
                        "mutation($a: ID!) { postComment(input: {animeId: $a, body: \"benchmark comment\"}) { id } }",
                        json!({"a": anime})).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let api_rate = latencies.len() as f64 / elapsed;
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    let (p50, p99) = (pct(0.50), pct(0.99));

    // The relay: until the outbox is empty.
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await?;
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(secs * 10 + 60),
            "relay did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE aggregate_id <> $1")
        .bind(&author)
        .fetch_one(&pool)
        .await?;
    let relay_rate = published as f64 / started.elapsed().as_secs_f64();
    let requests = latencies.len() as f64;
    let api_cpu_us = (bench::cpu_seconds(api.0.id()) - api_cpu_before) / requests * 1e6;
    let api_pg_cpu_us = (bench::cpu_seconds_of_all("postgres") - pg_cpu_before) / requests * 1e6;
    let rss_mb = bench::peak_rss_mb(&api.0.id().to_string());
    api.0.kill()?;
    api.0.wait()?;

    // Arm 2: pgbench, the same two inserts per transaction, same concurrency.
    // The script sits next to the results (not in /tmp) and is removed once pgbench ran.
    let dir = bench::results_path()
        .parent()
        .map(ToOwned::to_owned)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)?;
    let script = dir.join(format!("{}.sql", unique("api-pgbench")));
    std::fs::write(
        &script,
        "BEGIN;\n\
         INSERT INTO comments (id, anime_id, author_id, body, status) VALUES (gen_random_uuid(), :anime::uuid, :author::uuid, 'benchmark comment', 'VISIBLE');\n\
         WITH appended AS (INSERT INTO outbox (topic, aggregate_id, aggregate_version, event_type, correlation_id, payload) VALUES ('comment', gen_random_uuid()::text, 1, 'comment.created', 'bench', '{\"eventType\": \"comment.created\", \"body\": \"benchmark comment\"}'::jsonb) RETURNING id) SELECT pg_notify('anineplus_outbox', '') FROM appended;\n\
         COMMIT;\n",
    )?;
    let pg_cpu_before = bench::cpu_seconds_of_all("postgres");
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
        ])
        .args([
            "-D",
            &format!("anime='{anime}'"),
            "-D",
            &format!("author='{author}'"),
        ])
        .arg("-f")
        .arg(&script)
        .arg(db_url)
        .output();
    let pg_cpu = bench::cpu_seconds_of_all("postgres") - pg_cpu_before;
    let _ = std::fs::remove_file(&script);
    let output = output?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pg_rate: f64 = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}"))?;
    pool.close().await;
    // pgbench reports its transactions per second over the run.
    let pgbench_pg_cpu_us = pg_cpu / (pg_rate * secs as f64) * 1e6;
    Ok(Figures {
        api_rate,
        pg_rate,
        p50,
        p99,
        relay_rate,
        rss_mb,
        api_cpu_us,
        api_pg_cpu_us,
        pgbench_pg_cpu_us,
    })
}
