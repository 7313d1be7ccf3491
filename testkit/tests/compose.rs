//! `docker-compose.yaml` in step with the scripts of `make up` (no Docker needed).
//!
//! The scripts are the reference, read rather than restated here:
//! - every project service of `scripts/stack/services.sh` (its `SERVICES` list: name,
//!   binary, health URL, arguments) is a compose service built by the Dockerfile with
//!   `BIN=<binary>` and the same arguments as its `command:`, publishes its port on
//!   loopback, checks the same health URL, and sets every variable
//!   the script passes to it (`API_ENV` included) to the same value seen from the host
//!   (`0.0.0.0:3000` in the container is `127.0.0.1:3000`, `http://registry:8081` is
//!   `http://127.0.0.1:8081`); a variable its binary does not read is refused;
//! - every infrastructure service `scripts/stack/up.sh` starts is a compose service with
//!   its port, and the settings the scripts give Kafka (`server.properties`, heap),
//!   PostgreSQL and Redis are the compose ones.
//!
//! So a service added to `make up` without a compose entry, or a setting changed on one
//! side only, fails here.

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

mod scripts;
use scripts::*;

/// Infrastructure scripts whose compose service has another name.
const COMPOSE_NAME: &[(&str, &str)] = &[("opensearch", "elasticsearch")];
/// Variables whose value is each stack's own: `make up` generates the registry's users file
/// under its stack folder, compose mounts a file of development passwords.
/// The log archive's folder is each stack's own too (`.stack/logs-archive`, a volume).
const STACK_OWN: &[&str] = &["REGISTRY_AUTH_FILE", "LOG_ARCHIVE_DIR"];

/// `http://user:password@host:port` → `("user", "http://host:port")`.
fn split_userinfo(url: &str) -> (Option<String>, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (None, url.to_owned());
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => (
            Some(userinfo.split(':').next().unwrap_or("").to_owned()),
            format!("{scheme}://{host}"),
        ),
        None => (None, url.to_owned()),
    }
}

fn compose() -> Yaml {
    let text = read("docker-compose.yaml");
    let mut docs = YamlLoader::load_from_str(&text).expect("docker-compose.yaml is YAML");
    docs.remove(0)
}

/// A scalar as text (compose values may be strings, numbers or booleans).
fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A compose service's `environment` (map or `KEY=value` list form).
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(map) => map
            .iter()
            .map(|(k, v)| (text(k).unwrap(), text(v).unwrap_or_default()))
            .collect(),
        Yaml::Array(list) => list
            .iter()
            .filter_map(|e| {
                e.as_str()?
                    .split_once('=')
                    .map(|(k, v)| (k.into(), v.into()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `host:container` published ports of a service (`"127.0.0.1:3000:3000"`).
fn published(service: &Yaml) -> Vec<(String, u16, u16)> {
    service["ports"]
        .as_vec()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    let p = text(p)?;
                    let parts: Vec<&str> = p.split(':').collect();
                    match parts[..] {
                        [ip, host, container] => {
                            Some((ip.to_owned(), host.parse().ok()?, container.parse().ok()?))
                        }
                        _ => None,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `command:` or healthcheck `test:` of a service as one string.
fn joined(value: &Yaml) -> String {
    match value {
        Yaml::Array(items) => items.iter().filter_map(text).collect::<Vec<_>>().join(" "),
        other => text(other).unwrap_or_default(),
    }
}

/// A compose value as the host sees it: a service's own `0.0.0.0:<container port>` and
/// `<service>:<container port>` of any service become the published `127.0.0.1:<host port>`.
fn seen_from_host(value: &str, own: &str, services: &yaml_rust2::yaml::Hash) -> String {
    let mut out = value.to_owned();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        for (_, host, container) in published(service) {
            out = out.replace(&format!("{name}:{container}"), &format!("127.0.0.1:{host}"));
            if name == own {
                out = out.replace(
                    &format!("0.0.0.0:{container}"),
                    &format!("127.0.0.1:{host}"),
                );
            }
        }
    }
    out
}

#[test]
fn every_project_service_of_make_up_is_in_docker_compose_with_the_scripts_settings() {
    let compose = compose();
    let services = compose["services"].as_hash().expect("compose has services");
    let script = script("scripts/stack/services.sh");
    let vars = assignments(&script);
    let project = project_services(&script, &vars);
    assert!(
        project.len() >= 3,
        "services.sh lists its services: {project:?}"
    );
    let passed = passed_env(&script, &vars);
    assert!(
        passed.iter().any(|(k, _)| k == "API_ENV"),
        "services.sh passes API_ENV: {passed:?}"
    );

    let mut problems = Vec::new();
    for (name, binary, health, args) in &project {
        let service = &compose["services"][name.as_str()];
        if service.is_badvalue() {
            problems.push(format!(
                "`{name}` ({binary}, started by `make up`) has no service in docker-compose.yaml"
            ));
            continue;
        }
        if service["build"]["args"]["BIN"].as_str() != Some(binary)
            || service["build"]["context"].as_str() != Some(".")
        {
            problems.push(format!(
                "`{name}` is not built by the Dockerfile with BIN={binary}: {:?}",
                service["build"]
            ));
        }
        let command = seen_from_host(&joined(&service["command"]), name, services);
        if command != *args {
            problems.push(format!(
                "`{name}` runs with `{command}`, services.sh with `{args}`"
            ));
        }
        let (port, path) = port_and_path(health);
        if !published(service).contains(&("127.0.0.1".to_owned(), port, port)) {
            problems.push(format!(
                "`{name}` does not publish 127.0.0.1:{port}:{port}: {:?}",
                published(service)
            ));
        }
        let check = joined(&service["healthcheck"]["test"]);
        if !check.contains(&format!("localhost:{port}{path}")) {
            problems.push(format!(
                "`{name}`'s healthcheck is not the scripts' {health}: {check}"
            ));
        }
        let reads = read_by(binary);
        let env = environment(service);
        for (var, value) in passed.iter().filter(|(var, _)| reads.contains(var)) {
            if STACK_OWN.contains(&var.as_str()) {
                if !env.contains_key(var) {
                    problems.push(format!("`{name}` lacks {var} (services.sh sets it)"));
                }
                continue;
            }
            if var == "SCHEMA_REGISTRY_URL" {
                // services.sh gives each service its own registry user in the URL's userinfo
                // (the registry itself: admin); compose must too, on the same address.
                let user = match name.as_str() {
                    "registry" => "admin",
                    log if log.starts_with("log-") => "logs",
                    other => other,
                };
                let want = resolve(vars.get(var).map_or("", String::as_str), &vars);
                let (set_user, set_url) = split_userinfo(&seen_from_host(
                    env.get(var).map_or("", String::as_str),
                    name,
                    services,
                ));
                if set_user.as_deref() != Some(user) || set_url != want {
                    problems.push(format!(
                        "`{name}` sets {var}={:?}, services.sh http://{user}:<password>@ on {want}",
                        env.get(var)
                    ));
                }
                continue;
            }
            match env.get(var) {
                None => problems.push(format!(
                    "`{name}` lacks {var} (services.sh sets {var}={value})"
                )),
                Some(set) if seen_from_host(set, name, services) != *value => problems.push(
                    format!("`{name}` sets {var}={set}, services.sh {var}={value}"),
                ),
                Some(_) => {}
            }
        }
        for var in env.keys().filter(|var| !reads.contains(*var)) {
            problems.push(format!("`{name}` sets {var}, which {binary} does not read"));
        }
    }
    assert!(
        problems.is_empty(),
        "docker-compose.yaml is out of step with scripts/stack/services.sh:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_infrastructure_service_of_make_up_is_in_docker_compose_with_the_scripts_settings() {
    let compose = compose();
    let up = script("scripts/stack/up.sh");
    let mut started: Vec<String> = up
        .split("\"$here/")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once(".sh\" start")
                .map(|(svc, _)| svc.to_owned())
        })
        .filter(|svc| !svc.contains('$') && svc != "services")
        .collect();
    let parallel = up
        .split("for svc in ")
        .nth(1)
        .expect("up.sh starts some services in a loop");
    started.extend(
        parallel
            .split(';')
            .next()
            .unwrap()
            .split_whitespace()
            .map(str::to_owned),
    );
    assert!(
        started.len() >= 4,
        "up.sh starts the infrastructure: {started:?}"
    );

    let mut problems = Vec::new();
    for svc in &started {
        let name = COMPOSE_NAME
            .iter()
            .find(|(s, _)| s == svc)
            .map_or(svc.as_str(), |(_, c)| c);
        let service = &compose["services"][name];
        if service.is_badvalue() {
            problems.push(format!(
                "`{svc}` (started by `make up`) has no service `{name}` in docker-compose.yaml"
            ));
            continue;
        }
        let code = script(&format!("scripts/stack/{svc}.sh"));
        let port: u16 = code
            .lines()
            .find_map(|l| {
                l.split_once("PORT=")
                    .filter(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            })
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("scripts/stack/{svc}.sh names its port (`PORT=`)"));
        if !published(service).contains(&("127.0.0.1".to_owned(), port, port)) {
            problems.push(format!(
                "`{name}` does not publish 127.0.0.1:{port}:{port}: {:?}",
                published(service)
            ));
        }
    }

    // Kafka: every broker setting of server.properties, but the listeners and the data
    // directory (containers need their own), as KAFKA_<NAME> in compose; and its heap.
    let kafka = environment(&compose["services"]["kafka"]);
    let per_container = [
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "log.dirs",
    ];
    // The template's values as kafka.sh fills them for the single node (the cluster mode
    // fills them from scripts/stack/cluster.env).
    let properties = read("scripts/stack/kafka/server.properties")
        .replace("@NODE_ID@", "1")
        .replace("@REPLICATION@", "1")
        .replace("@MIN_ISR@", "1");
    for line in properties.lines() {
        let Some((key, value)) = line.split_once('=').filter(|_| !line.starts_with('#')) else {
            continue;
        };
        if per_container.contains(&key) {
            continue;
        }
        let var = format!("KAFKA_{}", key.replace('.', "_").to_ascii_uppercase());
        if kafka.get(&var).map(String::as_str) != Some(value) {
            problems.push(format!(
                "kafka: server.properties has {key}={value}, compose {var}={:?}",
                kafka.get(&var)
            ));
        }
    }
    let heap = resolve(
        &assignments(&script("scripts/stack/kafka.sh"))["KAFKA_HEAP_OPTS"],
        &BTreeMap::new(),
    );
    if kafka.get("KAFKA_HEAP_OPTS") != Some(&heap) {
        problems.push(format!(
            "kafka: the scripts' heap is {heap}, compose {:?}",
            kafka.get("KAFKA_HEAP_OPTS")
        ));
    }

    // PostgreSQL's `-c name=value` and Redis's `--flag value` settings, but where they listen.
    let postgres = joined(&compose["services"]["postgres"]["command"]);
    for setting in script("scripts/stack/postgres.sh")
        .split("-c ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next())
    {
        let setting = setting.trim_matches('"');
        if !setting.starts_with("listen_addresses") && !postgres.contains(&format!("-c {setting}"))
        {
            problems.push(format!(
                "postgres: the scripts set {setting}, compose runs `{postgres}`"
            ));
        }
    }
    let redis = joined(&compose["services"]["redis"]["command"]);
    let redis_script = script("scripts/stack/redis.sh");
    let start = redis_script
        .find("redis-server ")
        .expect("redis.sh runs redis-server");
    let words: Vec<&str> = redis_script[start..]
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    for pair in words.windows(2).filter(|w| w[0].starts_with("--")) {
        let (flag, value) = (pair[0], pair[1]);
        if ["--bind", "--port", "--dir", "--daemonize"].contains(&flag) {
            continue;
        }
        let value = if value == "\"\"" { "" } else { value };
        if !redis.contains(&format!("{flag} {value}").trim_end().to_owned()) {
            problems.push(format!(
                "redis: the scripts run {flag} {value:?}, compose runs `{redis}`"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docker-compose.yaml is out of step with scripts/stack/:\n{}",
        problems.join("\n")
    );
}
