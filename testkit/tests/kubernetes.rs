//! `deploy/kubernetes` checked offline, without a cluster or a Kubernetes tool:
//!
//! - **A strict decode of every manifest** into the Kubernetes API types (the `k8s-openapi`
//!   crate, API version 1.33): each document of each file the kustomization lists must
//!   decode into the type its `apiVersion` and `kind` name, and encode back to exactly the
//!   same document. A misspelt or misplaced field (`readinessProbes`, `containerPort` on a
//!   Service) is dropped by the decode and fails the comparison; a value of the wrong type
//!   fails the decode. What this does not prove: that a cluster admits the manifests (its
//!   admission webhooks, quotas and defaults), or the image tags.
//! - **In step with `make up`** (the scripts are the reference, as for docker-compose): every
//!   project service of `scripts/stack/services.sh` runs as a Deployment or StatefulSet of
//!   that name, from its binary's image, with the script's arguments (listening on every
//!   interface instead of loopback), a readiness probe on its health path and port, a
//!   liveness probe, CPU and memory requests and limits, and only environment variables its
//!   binary reads.
//! - **Operability**: each workload has a PodDisruptionBudget selecting its pods and a
//!   Service; the API scales horizontally; nothing scales past the topics' partition count
//!   (3), since more consumers in a group than partitions sit idle.
//! - **No secret in the repository**: no `Secret` object, and no variable that holds a
//!   credential (a database URL, a JWT secret, a URL with a user in it) has a literal value:
//!   they come from the Secret `anineplus-secrets`.

mod scripts;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use scripts::*;

const DIR: &str = "deploy/kubernetes";
/// The topics' partition count (`num.partitions` of the stack's broker, the pipelines'
/// default): the most instances a consumer group can keep busy.
const PARTITIONS: i32 = 3;
/// Variables that hold a credential: never a literal value.
const CREDENTIALS: &[&str] = &[
    "DATABASE_URL",
    "REGISTRY_DATABASE_URL",
    "JWT_SECRET",
    "SCHEMA_REGISTRY_URL",
];

/// A YAML value as JSON (what the Kubernetes types decode).
fn json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(r) => serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), json(v)))
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unsupported YAML value {other:?}"),
    }
}

/// The first path of `written` that `decoded` lost or changed (fields the encoder adds,
/// such as the `apiVersion` of an embedded claim template, are not differences).
fn difference(written: &Value, decoded: &Value, path: &str) -> Option<String> {
    match (written, decoded) {
        (Value::Object(x), Value::Object(y)) => x.iter().find_map(|(key, l)| match y.get(key) {
            Some(r) => difference(l, r, &format!("{path}.{key}")),
            None => Some(format!("{path}.{key} is lost")),
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| difference(l, r, &format!("{path}[{i}]"))),
        _ if written == decoded => None,
        _ => Some(format!("{path}: {written} written, {decoded} decoded")),
    }
}

/// Decodes `doc` into `T` and requires that it encodes back to the same document.
fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, at: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{at}: not a valid {}: {e}", doc["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(d) = difference(doc, &back, "") {
        panic!("{at}: a field the Kubernetes API does not have, or not where it is written: {d}");
    }
    typed
}

/// Every manifest the kustomization lists, strictly decoded.
#[derive(Default)]
struct Manifests {
    deployments: Vec<Deployment>,
    stateful_sets: Vec<StatefulSet>,
    services: Vec<Service>,
    budgets: Vec<PodDisruptionBudget>,
    autoscalers: Vec<HorizontalPodAutoscaler>,
    jobs: Vec<Job>,
    config_maps: Vec<ConfigMap>,
    documents: usize,
}

fn manifests() -> Manifests {
    let kustomization = YamlLoader::load_from_str(&read(&format!("{DIR}/kustomization.yaml")))
        .expect("kustomization.yaml is YAML")
        .remove(0);
    let mut all = Manifests::default();
    for file in kustomization["resources"].as_vec().expect("resources") {
        let file = file.as_str().unwrap();
        let path = format!("{DIR}/{file}");
        for (i, doc) in YamlLoader::load_from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .iter()
            .enumerate()
        {
            let doc = json(doc);
            let at = format!("{path}, document {}", i + 1);
            all.documents += 1;
            match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
                (Some("apps/v1"), Some("Deployment")) => all.deployments.push(strict(&doc, &at)),
                (Some("apps/v1"), Some("StatefulSet")) => all.stateful_sets.push(strict(&doc, &at)),
                (Some("v1"), Some("Service")) => all.services.push(strict(&doc, &at)),
                (Some("v1"), Some("ConfigMap")) => all.config_maps.push(strict(&doc, &at)),
                (Some("policy/v1"), Some("PodDisruptionBudget")) => {
                    all.budgets.push(strict(&doc, &at))
                }
                (Some("autoscaling/v2"), Some("HorizontalPodAutoscaler")) => {
                    all.autoscalers.push(strict(&doc, &at))
                }
                (Some("batch/v1"), Some("Job")) => all.jobs.push(strict(&doc, &at)),
                (Some("v1"), Some("Secret")) => {
                    panic!(
                        "{at}: a Secret in the repository; credentials belong in anineplus-secrets, created outside it"
                    )
                }
                (version, kind) => panic!("{at}: unexpected {version:?} {kind:?}"),
            }
        }
    }
    all
}

/// A workload's name, pod labels, replicas and pod spec.
fn workloads(m: &Manifests) -> Vec<(String, BTreeMap<String, String>, i32, PodSpec)> {
    let mut out = Vec::new();
    for d in &m.deployments {
        let spec = d.spec.as_ref().unwrap();
        let template = &spec.template;
        out.push((
            d.metadata.name.clone().unwrap(),
            template.metadata.as_ref().unwrap().labels.clone().unwrap(),
            spec.replicas.unwrap_or(1),
            template.spec.clone().unwrap(),
        ));
    }
    for s in &m.stateful_sets {
        let spec = s.spec.as_ref().unwrap();
        let template = &spec.template;
        out.push((
            s.metadata.name.clone().unwrap(),
            template.metadata.as_ref().unwrap().labels.clone().unwrap(),
            spec.replicas.unwrap_or(1),
            template.spec.clone().unwrap(),
        ));
    }
    out
}

/// The named port `name` of `container`.
fn port(container: &Container, name: &str) -> i32 {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
        .unwrap_or_else(|| panic!("{}: no port named {name}", container.name))
}

#[test]
fn every_manifest_decodes_strictly_into_the_kubernetes_api_types() {
    let m = manifests();
    assert!(m.documents > 0);
    eprintln!(
        "kubernetes: {} documents decoded strictly ({} deployments, {} stateful sets, {} services, {} disruption budgets, {} autoscalers, {} jobs, {} config maps)",
        m.documents,
        m.deployments.len(),
        m.stateful_sets.len(),
        m.services.len(),
        m.budgets.len(),
        m.autoscalers.len(),
        m.jobs.len(),
        m.config_maps.len()
    );
}

#[test]
fn every_service_of_make_up_runs_on_kubernetes_with_the_scripts_settings() {
    let m = manifests();
    let services = script("scripts/stack/services.sh");
    let vars = assignments(&services);
    let workloads = workloads(&m);
    let mut checked = Vec::new();
    for (name, binary, health, args) in project_services(&services, &vars) {
        let (_, labels, _, pod) =
            workloads
                .iter()
                .find(|(n, ..)| *n == name)
                .unwrap_or_else(|| {
                    panic!("{name} (services.sh) has no Deployment or StatefulSet in {DIR}")
                });
        let [container] = &pod.containers[..] else {
            panic!("{name}: one container per pod");
        };
        assert_eq!(
            container.image.as_deref(),
            Some(format!("anineplus/{binary}").as_str()),
            "{name}: the image of its binary"
        );
        let want: Vec<String> = args
            .split_whitespace()
            .map(|a| a.replace("127.0.0.1:", "0.0.0.0:"))
            .collect();
        assert_eq!(
            container.args.clone().unwrap_or_default(),
            want,
            "{name}: the arguments of services.sh"
        );
        let (health_port, health_path) = port_and_path(&health);
        assert_eq!(
            port(container, "http"),
            i32::from(health_port),
            "{name}: its port named http is the one services.sh checks"
        );
        let ready = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{name}: a readiness probe over HTTP"));
        assert_eq!(
            ready.path.as_deref(),
            Some(health_path.as_str()),
            "{name}: readiness on the health path"
        );
        assert!(
            container
                .liveness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .is_some(),
            "{name}: a liveness probe over HTTP"
        );
        let resources = container
            .resources
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: resources"));
        for (what, set) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            let set = set
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: resource {what}"));
            assert!(
                set.contains_key("cpu") && set.contains_key("memory"),
                "{name}: cpu and memory {what}"
            );
        }
        let read = read_by(&binary);
        for var in container.env.iter().flatten() {
            assert!(
                read.contains(&var.name),
                "{name}: {} is not read by {binary}",
                var.name
            );
            if CREDENTIALS.contains(&var.name.as_str()) {
                assert!(
                    var.value.is_none(),
                    "{name}: {} holds a credential: take it from the Secret",
                    var.name
                );
            }
            if let Some(value) = &var.value {
                assert!(
                    !value.contains('@'),
                    "{name}: {} has a user in a literal URL",
                    var.name
                );
            }
        }
        let selects = |selector: &BTreeMap<String, String>| {
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        };
        assert!(
            m.budgets.iter().any(|b| b
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(selects)),
            "{name}: a PodDisruptionBudget selecting its pods"
        );
        assert!(
            m.services.iter().any(|s| s
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(selects)),
            "{name}: a Service selecting its pods"
        );
        checked.push(name);
    }
    for (name, _, replicas, _) in &workloads {
        if *name != "api" && *name != "registry" {
            assert!(
                *replicas <= PARTITIONS,
                "{name}: {replicas} replicas, more than the {PARTITIONS} partitions"
            );
        }
    }
    for hpa in &m.autoscalers {
        let spec = hpa.spec.as_ref().unwrap();
        let target = &spec.scale_target_ref.name;
        if target != "api" {
            assert!(
                spec.max_replicas <= PARTITIONS,
                "{target}: scales to {}, past the {PARTITIONS} partitions",
                spec.max_replicas
            );
        }
    }
    assert!(
        m.autoscalers
            .iter()
            .any(|h| h.spec.as_ref().unwrap().scale_target_ref.name == "api"),
        "the API scales horizontally"
    );
    eprintln!(
        "kubernetes: in step with services.sh: {}",
        checked.join(", ")
    );
}
