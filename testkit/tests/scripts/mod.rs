//! The scripts of `make up` read as the reference by the tests of the deployment files
//! (`compose.rs`, `kubernetes.rs`): the services `scripts/stack/services.sh` starts, with
//! their binaries, health URLs and arguments, and the environment variables each binary
//! reads.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Variables every binary reads without a clap `env =` (tracing's filter).
pub const READ_BY_EVERY_BINARY: &[&str] = &["RUST_LOG"];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The shell script with `\`-continued lines joined.
pub fn script(path: &str) -> String {
    read(path).replace("\\\n", " ")
}

/// Top-level `NAME="${NAME:-default}"` / `NAME=value` assignments of a script.
pub fn assignments(script: &str) -> BTreeMap<String, String> {
    script
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            ok.then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The value of a shell expression with `${X:-default}` and `$X` resolved (environment
/// unset, as on a fresh machine).
pub fn resolve(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let expr = expr.trim_matches('"');
    if let Some(inner) = expr.strip_prefix("${").and_then(|e| e.strip_suffix('}')) {
        let default = inner.split_once(":-").map(|(_, d)| d).unwrap_or("");
        return resolve(default, vars);
    }
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let name: String = rest[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push_str(&resolve(vars.get(&name).map_or("", String::as_str), vars));
        rest = &rest[at + 1 + name.len()..];
    }
    out.push_str(rest);
    out
}

/// `(name, binary, health URL, arguments)` of `SERVICES=( ... )` in services.sh.
pub fn project_services(
    script: &str,
    vars: &BTreeMap<String, String>,
) -> Vec<(String, String, String, String)> {
    let start = script
        .find("SERVICES=(")
        .expect("services.sh has SERVICES=(");
    let end = start + script[start..].find("\n)").expect("SERVICES=( is closed");
    script[start..end]
        .lines()
        .skip(1)
        .filter_map(|line| {
            let entry = line.trim().strip_prefix('"')?.strip_suffix('"')?;
            let fields: Vec<&str> = entry.split_whitespace().collect();
            let [name, binary, health, ref args @ ..] = fields[..] else {
                panic!("a SERVICES entry is `name binary health-url [arguments]`: {line}");
            };
            let args: Vec<String> = args.iter().map(|a| resolve(a, vars)).collect();
            Some((
                name.to_owned(),
                binary.to_owned(),
                resolve(health, vars),
                args.join(" "),
            ))
        })
        .collect()
}

/// `VAR=expr` pairs services.sh passes to every service (`start_bg "$name" env ... "$BIN/...`).
pub fn passed_env(script: &str, vars: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let start = script
        .find("start_bg \"$name\" env ")
        .expect("services.sh starts with `start_bg \"$name\" env`");
    let line = script[start..].lines().next().unwrap();
    line.split_whitespace()
        .skip(3)
        .take_while(|word| !word.contains("$BIN/"))
        .map(|word| {
            let (name, expr) = word.split_once('=').expect("VAR=value");
            (name.to_owned(), resolve(expr, vars))
        })
        .collect()
}

/// `http://127.0.0.1:8081/schemas/types` → `(8081, "/schemas/types")`.
pub fn port_and_path(url: &str) -> (u16, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let port = authority
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("a port");
    (port, format!("/{path}"))
}

/// The crate directories whose code a binary runs: its own and its `anineplus-*` dependencies.
/// Crates are the top-level folders with a `Cargo.toml` and the folders with one a level
/// below them (`pipelines/*`, `schemas/cli`).
pub fn crate_dirs(binary: &str) -> Vec<PathBuf> {
    let folders = |dir: PathBuf| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .collect::<Vec<_>>()
    };
    let mut dirs = folders(root());
    let nested: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| d.is_dir() && !d.ends_with("target") && !d.ends_with("node_modules"))
        .flat_map(|d| folders(d.clone()))
        .filter(|d| d.is_dir())
        .collect();
    dirs.extend(nested);
    let manifests: Vec<(PathBuf, String)> = dirs
        .into_iter()
        .filter_map(|dir| {
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            Some((dir, manifest))
        })
        .collect();
    let package = |manifest: &str| -> String {
        let line = manifest.lines().find(|l| l.starts_with("name = ")).unwrap();
        line.trim_start_matches("name = ")
            .trim_matches('"')
            .to_owned()
    };
    let (own, manifest) = manifests
        .iter()
        .find(|(_, m)| m.contains(&format!("name = \"{binary}\"")))
        .unwrap_or_else(|| panic!("no crate builds the binary {binary}"));
    let dependencies = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .map(|rest| rest.split("\n[").next().unwrap())
        .unwrap_or("");
    let mut dirs = vec![own.clone()];
    for dependency in dependencies
        .lines()
        .filter_map(|l| l.split(['.', ' ', '=']).next())
    {
        if let Some((dir, _)) = manifests
            .iter()
            .find(|(_, m)| dependency.starts_with("anineplus-") && package(m) == dependency)
        {
            dirs.push(dir.clone());
        }
    }
    dirs
}

/// Every environment variable a binary reads through clap (`env = "X"`), plus
/// [`READ_BY_EVERY_BINARY`].
pub fn read_by(binary: &str) -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let code = std::fs::read_to_string(&path).unwrap();
                for piece in code.split("env = \"").skip(1) {
                    out.insert(piece.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    let mut out: BTreeSet<String> = READ_BY_EVERY_BINARY
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for dir in crate_dirs(binary) {
        walk(&dir.join("src"), &mut out);
    }
    out
}
