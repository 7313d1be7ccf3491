//! What shipping every log record to Kafka costs the API, side by side in one run.
//!
//! The API binary runs as `make up` runs it (`RUST_LOG=info`: one `graphql operation`
//! line per request, JSON on stdout), once with `--log-shipping true` and once with
//! `false`, each on a fresh process and topic prefix, in the order on, off, off, on after
//! an unmeasured 3 s warm-up arm;
//! `BENCH_CONCURRENCY` clients (default 16) post comments for `BENCH_SECS` (default 10)
//! per arm.
//!
//! - `api_log_layer_ratio`: postComment/s with shipping on ÷ off (means of the two runs
//!   each). Goal ≥ 0.95.
//! - `api_log_call_ns`: the shipping layer's CPU per log record it shipped: (API CPU per
//!   request with shipping − without) ÷ records shipped per request (`logs_shipped_total`
//!   over the requests); `api_log_records_per_request` for context.
//!
//! `BENCH_API_BIN` runs another build of the API binary.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_testkit::{Stack, TestDatabase, bench, unique};
use serde_json::json;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One arm's figures: requests/s, CPU seconds per request, records shipped per request.
struct Arm {
    rate: f64,
    cpu_per_request: f64,
    shipped_per_request: f64,
}

async fn counter(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let Ok(response) = http.get(format!("{url}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn arm(
    stack: &Stack,
    db_url: &str,
    shipping: bool,
    secs: u64,
    concurrency: usize,
) -> anyhow::Result<Arm> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let binary = std::env::var("BENCH_API_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_anineplus-api").to_owned());
    let api = Command::new(binary)
        .env("RUST_LOG", "info,rdkafka=warn")
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
            &format!("{}.", unique("logbench")),
            "--redis-key-prefix",
            &format!("{}:", unique("logbench")),
            "--rate-limit-requests",
            "1000000000",
            "--log-shipping",
            if shipping { "true" } else { "false" },
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let api = Child(api);
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
    let login = bench::gql(&http, &url, None,
        "mutation { login(input: {email: \"admin@anineplus.local\", password: \"correct horse battery\"}) { token } }",
        json!({})).await;
    let token = Arc::new(login["login"]["token"].as_str().unwrap().to_owned());
    let data = bench::gql(
        &http,
        &url,
        Some(&token),
        "mutation { createAnime(input: {title: \"Log bench\", status: AIRING}) { id } }",
        json!({}),
    )
    .await;
    let anime = data["createAnime"]["id"].as_str().unwrap().to_owned();

    let shipped_before = counter(&http, &url, "logs_shipped_total").await;
    let cpu_before = bench::cpu_seconds(api.0.id());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, token, anime) = (http.clone(), url.clone(), token.clone(), anime.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    bench::gql(&http, &url, Some(&token),
                        "mutation($a: ID!) { postComment(input: {animeId: $a, body: \"log bench comment\"}) { id } }",
                        json!({"a": anime})).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut requests = 0u64;
    for w in workers {
        requests += w.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = bench::cpu_seconds(api.0.id()) - cpu_before;
    // What the load logged reaches Kafka within the linger (100 ms) and the acks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shipped = counter(&http, &url, "logs_shipped_total").await - shipped_before;
    let requests = requests as f64;
    Ok(Arm {
        rate: requests / elapsed,
        cpu_per_request: cpu / requests,
        shipped_per_request: shipped / requests,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = bench::size("BENCH_SECS", 10) as u64;
    let concurrency = bench::size("BENCH_CONCURRENCY", 16);
    let stack = Stack::from_env();
    stack.kafka().await?;
    stack.registry().await?;
    let db = TestDatabase::create("api_log_bench").await;
    let result = async {
        // The admin every arm logs in as; then a short unmeasured arm, so that the first
        // measured one does not pay for cold caches (PostgreSQL's, the engine's).
        sign_up(&stack, &db.url).await?;
        arm(&stack, &db.url, false, 3, concurrency).await?;
        let mut on = Vec::new();
        let mut off = Vec::new();
        for shipping in [true, false, false, true] {
            let a = arm(&stack, &db.url, shipping, secs, concurrency).await?;
            eprintln!(
                "bench: log shipping {}: {:.0} postComment/s, {:.0} µs CPU per request, {:.2} records shipped per request",
                if shipping { "on" } else { "off" },
                a.rate,
                a.cpu_per_request * 1e6,
                a.shipped_per_request
            );
            if shipping { on.push(a) } else { off.push(a) }
        }
        anyhow::Ok((on, off))
    }
    .await;
    db.remove().await;
    let (on, off) = result?;
    let mean =
        |arms: &[Arm], f: fn(&Arm) -> f64| arms.iter().map(f).sum::<f64>() / arms.len() as f64;
    let ratio = mean(&on, |a| a.rate) / mean(&off, |a| a.rate);
    let shipped = mean(&on, |a| a.shipped_per_request);
    let extra_cpu = mean(&on, |a| a.cpu_per_request) - mean(&off, |a| a.cpu_per_request);
    bench::record(&[
        ("api_log_layer_ratio", ratio),
        ("api_log_call_ns", extra_cpu / shipped * 1e9),
        ("api_log_records_per_request", shipped),
    ])?;
    Ok(())
}

/// Signs the admin up once, through a short-lived API (both arms then log in).
async fn sign_up(stack: &Stack, db_url: &str) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let binary = std::env::var("BENCH_API_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_anineplus-api").to_owned());
    let api = Child(
        Command::new(binary)
            .env("RUST_LOG", "warn")
            .args([
                "--env",
                "dev",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                db_url,
                "--kafka-brokers",
                &stack.kafka_brokers,
                "--schema-registry-url",
                &stack.registry_url,
                "--redis-url",
                &stack.redis_url,
                "--kafka-topic-prefix",
                &format!("{}.", unique("logbench")),
                "--log-shipping",
                "false",
            ])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let http = reqwest::Client::builder().no_proxy().build()?;
    for _ in 0..300 {
        if http
            .get(format!("{url}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bench::gql(&http, &url, None,
        "mutation { signUp(input: {email: \"admin@anineplus.local\", name: \"Bench\", password: \"correct horse battery\"}) { token } }",
        json!({})).await;
    drop(api);
    Ok(())
}
