//! Benchmark figures: every benchmark of the project records named numbers here, and
//! `make bench` prints them as one table.
//!
//! The figures live in one flat JSON object, `target/bench/results.json` (or
//! `$BENCH_RESULTS`). Benchmarks run one after another, each merging its figures into the
//! file, so the file holds the latest value of every figure. Performance claims are ratios
//! of two arms measured side by side in one run (see `docs/benchmarks.md`): machines here
//! are shared and noisy, absolute rates are printed for context only.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// Where the figures are written.
pub fn results_path() -> PathBuf {
    std::env::var_os("BENCH_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/results.json")
        })
}

/// Reads the figures recorded so far (an empty object when there are none).
pub fn load() -> Map<String, Value> {
    std::fs::read_to_string(results_path())
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Merges `figures` into the results file and prints each one as it lands.
pub fn record(figures: &[(&str, f64)]) -> std::io::Result<()> {
    let path = results_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut all = load();
    for (name, value) in figures {
        println!("bench: {name} = {}", format_figure(*value));
        let rounded = (value * 1000.0).round() / 1000.0;
        all.insert((*name).to_owned(), Value::from(rounded));
    }
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Object(all))? + "\n",
    )
}

/// The size named by environment variable `name` (set by `scripts/bench.sh`), or `default`.
pub fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory (`VmHWM`) of process `pid` (`"self"` for this one), in MiB; NaN
/// when it cannot be read.
pub fn peak_rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system, every thread) process `pid` has used so far, in seconds, from
/// fields 14 and 15 of `/proc/<pid>/stat` (in clock ticks of the kernel's fixed `USER_HZ`,
/// 100 per second); NaN when it cannot be read (the process is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_ticks(&format!("/proc/{pid}/stat"))
        .map(|(own, _)| own)
        .unwrap_or(f64::NAN)
}

/// CPU time, in seconds, used so far by every process whose command name is `comm` (e.g.
/// `postgres`), including the children they have reaped (fields 16 and 17): PostgreSQL's
/// postmaster reaps its backends, so the figure keeps the CPU of connections that have
/// closed. The difference of two readings is what those processes used in between.
pub fn cpu_seconds_of_all(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .filter_map(|e| stat_ticks(&e.path().join("stat").to_string_lossy()))
        .map(|(own, children)| own + children)
        .sum()
}

/// (own, reaped children's) CPU seconds of a `/proc/<pid>/stat` file.
fn stat_ticks(path: &str) -> Option<(f64, f64)> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((
        (tick(11)? + tick(12)?) / USER_HZ,
        (tick(13)? + tick(14)?) / USER_HZ,
    ))
}

/// `pipeline_records_consumed_total` and `pipeline_records_sunk_total` of a pipeline's
/// `/metrics` at `url`; `None` while it does not answer.
pub async fn pipeline_counters(http: &reqwest::Client, url: &str) -> Option<(u64, u64)> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let counter = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    Some((
        counter("pipeline_records_consumed_total")?,
        counter("pipeline_records_sunk_total")?,
    ))
}

/// How long a pipeline (its `/metrics` at `url`) takes from its first consumed record to
/// having settled `n`: scraped every 20 ms (a scrape costs the pipeline CPU, so not
/// faster); an error if it consumes nothing within `start` or does not finish within
/// `finish`.
pub async fn time_to_settle(
    http: &reqwest::Client,
    url: &str,
    n: u64,
    start: std::time::Duration,
    finish: std::time::Duration,
) -> anyhow::Result<std::time::Duration> {
    time_to_settle_all(http, &[url], n, start, finish).await
}

/// [`time_to_settle`] for the instances of one pipeline (their `/metrics` at `urls`): from
/// the first record any of them consumed to their settled records adding up to `n`.
pub async fn time_to_settle_all(
    http: &reqwest::Client,
    urls: &[&str],
    n: u64,
    start: std::time::Duration,
    finish: std::time::Duration,
) -> anyhow::Result<std::time::Duration> {
    let names = urls.join(", ");
    // (consumed, sunk) summed over the instances; an instance not answering counts 0.
    let totals = || async {
        let mut sum = (0, 0);
        for url in urls {
            if let Some((c, s)) = pipeline_counters(http, url).await {
                sum = (sum.0 + c, sum.1 + s);
            }
        }
        sum
    };
    let deadline = std::time::Instant::now() + start;
    loop {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{names}: nothing consumed"
        );
        if totals().await.0 > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let started = std::time::Instant::now();
    loop {
        anyhow::ensure!(
            started.elapsed() < finish,
            "{names}: {n} records not settled"
        );
        if totals().await.1 >= n {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The median of `values` (the upper one of an even count); NaN when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Posts a GraphQL operation to `<url>/graphql` (with a bearer `token`) and returns its
/// `data`; panics on an error, which would make the figures meaningless.
pub async fn gql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = http
        .post(format!("{url}/graphql"))
        .json(&serde_json::json!({"query": query, "variables": variables}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(
        body.get("errors").is_none(),
        "error in benchmark response: {body}"
    );
    body["data"].clone()
}

/// Renders the recorded figures as a two-column table, sorted by name.
pub fn table(figures: &Map<String, Value>) -> String {
    let width = figures.keys().map(String::len).max().unwrap_or(6).max(6);
    let mut out = format!("{:<width$}  {:>14}\n", "figure", "value");
    out.push_str(&format!("{}  {}\n", "-".repeat(width), "-".repeat(14)));
    let mut names: Vec<_> = figures.keys().collect();
    names.sort();
    for name in names {
        let value = figures[name.as_str()]
            .as_f64()
            .map(format_figure)
            .unwrap_or_else(|| figures[name.as_str()].to_string());
        out.push_str(&format!("{name:<width$}  {value:>14}\n"));
    }
    out
}

fn format_figure(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu() {
        // Spin for 300 ms of wall time: however loaded the machine, that is more than one
        // clock tick (10 ms) of CPU, so a reading that does not grow is a wrong reading.
        let before = cpu_seconds(std::process::id());
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            for i in 0..10_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let after = cpu_seconds(std::process::id());
        assert!(before.is_finite() && after.is_finite(), "{before} {after}");
        assert!(after > before, "spinning used no CPU: {before} -> {after}");
        assert!(cpu_seconds(u32::MAX).is_nan());
    }

    #[test]
    fn table_is_sorted_and_aligned() {
        let mut figures = Map::new();
        figures.insert("z_ratio".into(), Value::from(0.8123));
        figures.insert("a_rate_per_s".into(), Value::from(12345.6));
        let table = table(&figures);
        let lines: Vec<_> = table.lines().collect();
        assert!(lines[2].starts_with("a_rate_per_s"));
        assert!(lines[2].ends_with("12346"));
        assert!(lines[3].ends_with("0.812"));
    }
}
