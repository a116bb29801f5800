//! What operators load into their monitoring, checked with the real tools: the alert rules
//! (`docker/prometheus/alerts.yml`, and the same rules as a PrometheusRule in
//! `docker/k8s/monitoring/`), the Prometheus config for Compose and the Grafana dashboard
//! (`docker/grafana/switchboard.json`).
//!
//! - promtool (Debian's `prometheus` package; `scripts/test` installs it) checks the rules
//!   and the config, and runs the rules' unit tests (`alerts.test.yml`).
//! - A real Prometheus, configured by the shipped `prometheus.yml`, scrapes two real cluster
//!   nodes while clients relay through them, and every query of every dashboard panel is
//!   asked over Prometheus' HTTP API, as Grafana would ask it: each must parse and return a
//!   number. The same Prometheus evaluates the alert rules against the live metrics: every
//!   rule must evaluate without error, and none may fire on a healthy cluster.
//!
//! Static checks catch what a live run cannot: a rule on a misspelt metric evaluates fine
//! and simply never fires.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Peer;
use rust_socketio::TransportType;
use serde_json::{Value, json};
use switchboard_testkit::{Cluster, Prometheus, exported_metrics};
use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Longest wait for every dashboard query (and every rule) to have an answer: Prometheus
/// scrapes every second, and a rate needs two scrapes inside its window.
const DATA_WAIT: Duration = Duration::from_secs(60);

/// What Grafana puts for `$__rate_interval` with a 1 s scrape interval is 4 s; a little more
/// leaves room for a late scrape.
const RATE_INTERVAL: &str = "5s";

// ---- promtool ------------------------------------------------------------------------------

#[test]
fn shipped_rules_and_config_pass_promtool_check() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    promtool(&["test", "rules", "alerts.test.yml"]);
}

/// Runs promtool in `docker/prometheus/` and fails the test with its output if it fails.
fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo_file("docker/prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool (./scripts/test installs it): {e}"));
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- the rule files ------------------------------------------------------------------------

#[test]
fn every_alert_has_a_unit_test_that_fires_it() {
    let alerts: BTreeSet<String> = rules(&yaml("docker/prometheus/alerts.yml")["groups"])
        .iter()
        .map(|rule| scalar(&rule["alert"]))
        .collect();
    let tests = yaml("docker/prometheus/alerts.test.yml");
    let fired: BTreeSet<String> = seq(&tests["tests"])
        .iter()
        .flat_map(|test| seq(&test["alert_rule_test"]))
        .filter(|case| !seq(&case["exp_alerts"]).is_empty())
        .map(|case| scalar(&case["alertname"]))
        .collect();
    assert_eq!(alerts, fired, "alerts vs alerts fired by alerts.test.yml");
    for rule in rules(&yaml("docker/prometheus/alerts.yml")["groups"]) {
        let name = scalar(&rule["alert"]);
        let severity = scalar(&rule["labels"]["severity"]);
        assert!(
            ["critical", "warning"].contains(&severity.as_str()),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                !scalar(&rule["annotations"][annotation]).is_empty(),
                "{name} has no {annotation}"
            );
        }
    }
}

#[test]
fn prometheus_rule_carries_the_same_rules_as_alerts_yml() {
    let docs = yaml_docs("docker/k8s/monitoring/prometheusrule.yaml");
    let [rule] = docs.as_slice() else {
        panic!("prometheusrule.yaml should hold one object");
    };
    assert_eq!(scalar(&rule["kind"]), "PrometheusRule");
    assert_eq!(scalar(&rule["apiVersion"]), "monitoring.coreos.com/v1");
    assert_eq!(
        rule["spec"]["groups"],
        yaml("docker/prometheus/alerts.yml")["groups"],
        "docker/k8s/monitoring/prometheusrule.yaml spec.groups differ from docker/prometheus/alerts.yml"
    );
}

#[test]
fn rules_and_dashboard_name_only_metrics_switchboard_exports() {
    let exported = exported_metrics();
    for file in [
        "docker/prometheus/alerts.yml",
        "docker/grafana/switchboard.json",
    ] {
        for name in metric_names(&read(file)) {
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which switchboard does not export (docs/metrics.md)"
            );
        }
    }
}

/// Compose's Prometheus scrapes exactly the Compose nodes with the shipped config and rules,
/// and its Grafana gets the dashboard and that Prometheus.
#[test]
fn compose_wires_prometheus_and_grafana_to_the_nodes() {
    let compose = yaml("docker/compose.yml");
    let services = compose["services"].as_hash().expect("compose services");
    let nodes: BTreeSet<String> = services
        .values()
        .filter_map(|s| s["environment"]["ADVERTISE_URL"].as_str())
        .map(|url| {
            url.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    assert!(nodes.len() >= 2, "compose nodes: {nodes:?}");

    let config = yaml("docker/prometheus/prometheus.yml");
    let [job] = seq(&config["scrape_configs"])
        .try_into()
        .unwrap_or_else(|jobs: Vec<Yaml>| {
            panic!(
                "prometheus.yml should have one scrape job, has {}",
                jobs.len()
            )
        });
    assert_eq!(
        scalar(&job["job_name"]),
        "switchboard",
        "the rules and dashboard select it"
    );
    let scraped: BTreeSet<String> = seq(&job["static_configs"])
        .iter()
        .flat_map(|c| seq(&c["targets"]))
        .map(|t| scalar(&t))
        .collect();
    assert_eq!(scraped, nodes, "prometheus.yml targets vs compose nodes");

    let prometheus = &compose["services"]["prometheus"];
    let volumes = words(&prometheus["volumes"]);
    let command = words(&prometheus["command"]);
    assert!(command.contains(&"--config.file=/etc/prometheus/prometheus.yml".to_owned()));
    for file in ["prometheus.yml", "alerts.yml"] {
        let mount = format!("./prometheus/{file}:/etc/prometheus/{file}:ro");
        assert!(volumes.contains(&mount), "prometheus must mount {mount}");
    }
    assert_eq!(
        seq(&config["rule_files"])
            .iter()
            .map(scalar)
            .collect::<Vec<_>>(),
        ["alerts.yml"]
    );

    let grafana = &compose["services"]["grafana"];
    let volumes = words(&grafana["volumes"]);
    let provider = yaml("docker/grafana/provisioning/dashboards/switchboard.yml");
    let path = scalar(&seq(&provider["providers"])[0]["options"]["path"]);
    let mount = format!("./grafana/switchboard.json:{path}/switchboard.json:ro");
    assert!(volumes.contains(&mount), "grafana must mount {mount}");
    assert!(volumes.contains(&"./grafana/provisioning:/etc/grafana/provisioning:ro".to_owned()));
    let datasources = yaml("docker/grafana/provisioning/datasources/prometheus.yml");
    let datasource = &seq(&datasources["datasources"])[0];
    assert_eq!(scalar(&datasource["type"]), "prometheus");
    let port = words(&prometheus["ports"])
        .first()
        .and_then(|p| p.rsplit(':').next().map(str::to_owned))
        .expect("prometheus publishes its port");
    assert_eq!(
        scalar(&datasource["url"]),
        format!("http://prometheus:{port}")
    );
}

fn words(node: &Yaml) -> Vec<String> {
    seq(node).iter().map(scalar).collect()
}

// ---- the dashboard -------------------------------------------------------------------------

#[test]
fn every_dashboard_panel_follows_the_node_variable() {
    let dashboard = dashboard();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "node"]);
    let panels = panels(&dashboard);
    assert!(panels.len() >= 10, "only {} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                expr.contains("instance=~\"$node\""),
                "panel {title:?} ignores the node variable: {expr}"
            );
        }
    }
}

/// The test the dashboard exists for: a real Prometheus scraping two real nodes under
/// traffic answers every panel's query with data, and evaluates every alert rule cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let cluster = Cluster::start(BIN, 2, &[]);
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let prometheus = Prometheus::spawn(&targets);
    let mut clients = Clients::join(&cluster).await;

    // The node variable, as Grafana fills it: one value per node, from build_info; "All"
    // becomes a regex of every value, dots escaped.
    let instances = tokio::task::block_in_place(|| wait_for_nodes(&prometheus, &targets));
    let node_regex = instances
        .iter()
        .map(|i| i.replace('.', "\\\\."))
        .collect::<Vec<_>>()
        .join("|");
    let mut queries: Vec<(String, String)> = Vec::new();
    for panel in panels(&dashboard()) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let expr = expr
                .replace("$node", &format!("({node_regex})"))
                .replace("$__rate_interval", RATE_INTERVAL);
            queries.push((title.to_owned(), expr));
        }
    }

    // Traffic and questions in turn, until every query has an answer (bounded: DATA_WAIT).
    let started = Instant::now();
    let missing = loop {
        clients.round().await;
        let missing: Vec<String> = tokio::task::block_in_place(|| {
            queries
                .iter()
                .filter_map(|(title, expr)| {
                    let why = answer_of(&prometheus, expr).err()?;
                    Some(format!("{title}: {expr}\n    {why}"))
                })
                .collect()
        });
        // A query Prometheus cannot parse will not parse later either.
        let unparsable = missing.iter().any(|m| m.contains("bad_data"));
        if missing.is_empty() || unparsable || started.elapsed() > DATA_WAIT {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        missing.is_empty(),
        "{} of {} dashboard queries failed or returned no data (waited up to {DATA_WAIT:?}):\n{}",
        missing.len(),
        queries.len(),
        missing.join("\n")
    );

    let rules = tokio::task::block_in_place(|| wait_for_rule_evaluations(&prometheus));
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "rule {} does not evaluate: {}",
            rule["name"], rule["lastError"]
        );
    }
    let alerts =
        tokio::task::block_in_place(|| prometheus_data(&prometheus, "/api/v1/alerts", &[]));
    let firing: Vec<&Value> = alerts["alerts"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["state"] == "firing").collect())
        .unwrap_or_default();
    assert!(
        firing.is_empty(),
        "alerts fire on a healthy cluster: {firing:?}"
    );
}

/// Four clients on two nodes, over both transports, in one room.
struct Clients {
    alice: Peer,
    bob: Peer,
    carol: Peer,
    dave: Peer,
}

impl Clients {
    async fn join(cluster: &Cluster) -> Clients {
        let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
        let mut clients = Clients {
            alice: Peer::connect_over(first, TransportType::Websocket).await,
            bob: Peer::connect_over(first, TransportType::Polling).await,
            carol: Peer::connect_over(second, TransportType::Websocket).await,
            dave: Peer::connect_over(second, TransportType::Polling).await,
        };
        clients.alice.join("dashboard", "alice").await;
        clients.bob.join("dashboard", "bob").await;
        clients.carol.join("dashboard", "carol").await;
        clients.dave.join("dashboard", "dave").await;
        clients
    }

    /// Relays within a node and across nodes, a media-state and a refused join. Every
    /// client makes a call, so what each received meanwhile is read off its channel.
    async fn round(&mut self) {
        let offer = json!({"description": {"type": "offer", "sdp": "v=0\r\n"}});
        for target in [&self.bob.id, &self.carol.id] {
            let message = json!({"source": self.alice.id, "target": target, "data": offer});
            let (_, ack) = self.alice.call("#rtcio:message", message).await;
            assert_eq!(ack, json!({"ok": true}));
        }
        let message = json!({"source": self.carol.id, "target": self.dave.id, "data": offer});
        let (_, ack) = self.carol.call("#rtcio:message", message).await;
        assert_eq!(ack, json!({"ok": true}));
        let state = json!({"roomId": "dashboard", "mic": false, "cam": true});
        let (_, ack) = self.dave.call("media-state", state).await;
        assert_eq!(ack, json!({"ok": true}));
        let bad = json!({"roomId": "no spaces", "name": "x"});
        let (_, ack) = self.bob.call("join-room", bad).await;
        assert_eq!(ack["code"], "invalid-payload");
    }
}

/// Waits until Prometheus has scraped both nodes, and returns the `instance` of each, read
/// from `switchboard_build_info` the way the dashboard's node variable reads it.
fn wait_for_nodes(prometheus: &Prometheus, targets: &[String]) -> Vec<String> {
    let query = dashboard()["templating"]["list"][1]["query"]
        .as_str()
        .expect("the node variable's query")
        .to_owned();
    let inner = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the node variable should be query_result(...): {query}"));
    let mut expected = targets.to_vec();
    expected.sort();
    let started = Instant::now();
    loop {
        let data = prometheus_data(prometheus, "/api/v1/query", &[("query", inner)]);
        let series = data["result"].as_array().cloned().unwrap_or_default();
        let mut instances: Vec<String> = series
            .iter()
            .filter(|s| s["metric"]["node"].is_string())
            .filter_map(|s| s["metric"]["instance"].as_str().map(str::to_owned))
            .collect();
        instances.sort();
        if instances == expected {
            return instances;
        }
        assert!(
            started.elapsed() < DATA_WAIT,
            "the node variable's query found {instances:?}, not the nodes {targets:?}: {series:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every alert rule, once each has been evaluated at least once.
fn wait_for_rule_evaluations(prometheus: &Prometheus) -> Vec<Value> {
    let expected = rules(&yaml("docker/prometheus/alerts.yml")["groups"]).len();
    let started = Instant::now();
    loop {
        let data = prometheus_data(prometheus, "/api/v1/rules", &[]);
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules
            .iter()
            .filter(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            })
            .count();
        if rules.len() == expected && evaluated == expected {
            return rules;
        }
        assert!(
            started.elapsed() < DATA_WAIT,
            "Prometheus loaded {} rules of {expected}, evaluated {evaluated}: {data}",
            rules.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Asks an instant query; Ok when it parsed and returned at least one finite number, else
/// why not.
fn answer_of(prometheus: &Prometheus, expr: &str) -> Result<(), String> {
    let body = prometheus.query(expr)?;
    let answer: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if answer["status"] != "success" {
        return Err(format!("{}: {}", answer["errorType"], answer["error"]));
    }
    let result = &answer["data"]["result"];
    let values: Vec<&str> = match answer["data"]["resultType"].as_str() {
        Some("vector") => result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["value"][1].as_str())
            .collect(),
        Some("scalar") => result[1].as_str().into_iter().collect(),
        other => return Err(format!("unexpected result type {other:?}")),
    };
    if values
        .iter()
        .any(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
    {
        Ok(())
    } else {
        Err(format!("no number yet: {result}"))
    }
}

/// The `data` of a successful API answer; fails the test otherwise.
fn prometheus_data(prometheus: &Prometheus, path: &str, query: &[(&str, &str)]) -> Value {
    let (status, body) = prometheus
        .get(path, query)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let answer: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    answer["data"].clone()
}

// ---- helpers -------------------------------------------------------------------------------

fn dashboard() -> Value {
    serde_json::from_str(&read("docker/grafana/switchboard.json"))
        .expect("docker/grafana/switchboard.json is not valid JSON")
}

/// Every panel with queries (rows hold none, or nest their panels when collapsed).
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            all.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        } else {
            all.push(panel.clone());
        }
    }
    all
}

/// The rules of every group.
fn rules(groups: &Yaml) -> Vec<Yaml> {
    seq(groups)
        .iter()
        .flat_map(|group| seq(&group["rules"]))
        .collect()
}

fn seq(node: &Yaml) -> Vec<Yaml> {
    node.as_vec().cloned().unwrap_or_default()
}

fn scalar(node: &Yaml) -> String {
    match node {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Every `switchboard_…` name in a text, histogram series (`_bucket`, `_sum`, `_count`) by
/// their histogram's name.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.match_indices("switchboard_")
        .filter(|(at, _)| {
            !text[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .map(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix));
            match base {
                Some(base) if base.ends_with("_seconds") => base.to_owned(),
                _ => name,
            }
        })
        .collect()
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    yaml_docs(path)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{path} is empty"))
}
