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
