//! The deployment files in `docker/` (Dockerfile, compose.yml, nginx.conf and its room
//! affinity variant, k8s/) checked against the binary they deploy.
//!
//! Nothing else in the test suite builds an image, starts compose or applies the manifests
//! (CI has no Docker daemon and no Kubernetes), so without this a renamed option, a probe on a
//! route that does not exist or a grace period shorter than the drain would only show in
//! someone's deployment. Each test checks one thing an operator would hit, against the real
//! option definitions (`Config::command()`, what `switchboard --help` prints) and the real
//! routes, served in-process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use switchboard::config::Config;
use switchboard_testkit::exported_metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

/// Environment variables the files may set that are not switchboard options.
const NOT_OPTIONS: &[&str] = &["RUST_LOG"];

/// What a node may need after the drain proper (`--drain-wait` + `--drain-spread`): the last
/// batch disconnecting and the node leaving the registry. A stop timeout shorter than drain +
/// this cuts the last sockets off unannounced.
const DRAIN_EXIT_MARGIN: Duration = Duration::from_secs(5);

// ---- Dockerfile ----------------------------------------------------------------------------

#[test]
fn dockerfile_runs_as_non_root_with_a_health_check() {
    let image = runtime_stage();
    let env = dockerfile_env(&image);
    let config = accepted("docker/Dockerfile ENV", &env);

    let user = instruction(&image, "USER").expect("the image sets no USER: it would run as root");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user}: use a numeric, non-zero uid (Kubernetes' runAsNonRoot cannot check a name)"
    );
    assert_eq!(instruction(&image, "STOPSIGNAL"), Some("SIGTERM"));
    assert_eq!(
        instruction(&image, "EXPOSE"),
        Some(config.port.to_string().as_str()),
        "EXPOSE differs from the port switchboard listens on"
    );
    let health = instruction(&image, "HEALTHCHECK").expect("the image has no HEALTHCHECK");
    let (port, path) = http_target("HEALTHCHECK", health, &env);
    assert_eq!((port, path.as_str()), (config.port, "/health"));
    let entrypoint = instruction(&image, "ENTRYPOINT").expect("no ENTRYPOINT");
    assert!(
        entrypoint.contains("/switchboard\""),
        "ENTRYPOINT {entrypoint}"
    );
}

/// The instructions of the Dockerfile's last stage (the image that runs) as (INSTRUCTION,
/// arguments), with continuation lines joined and comments dropped.
fn runtime_stage() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("docker/Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            continue;
        }
        current.push_str(line);
        let (name, args) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((name.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    let from = instructions
        .iter()
        .rposition(|(name, _)| name == "FROM")
        .expect("docker/Dockerfile has no FROM");
    instructions.split_off(from)
}

fn instruction<'a>(stage: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = stage.iter().filter(|(n, _)| n == name);
    let (_, args) = found.next_back()?;
    Some(args)
}

/// `ENV A=1 B=2` lines of the stage.
fn dockerfile_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    let pairs = stage.iter().filter(|(name, _)| name == "ENV");
    pairs
        .flat_map(|(_, args)| args.split_whitespace())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("write ENV as NAME=value, not {pair:?}"));
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

// ---- compose.yml ---------------------------------------------------------------------------

#[test]
fn compose_nodes_are_distinct_members_of_one_cluster() {
    let compose = compose();
    let nodes = compose_nodes(&compose);
    assert!(nodes.len() >= 2, "compose.yml should run a cluster");
    let mut ids = BTreeSet::new();
    for (name, service) in &nodes {
        let file = format!("compose.yml service {name}");
        let env = string_map(&service["environment"]);
        let config = accepted(&file, &env);

        let id = config
            .node_id
            .clone()
            .expect("each node needs its own NODE_ID");
        assert!(ids.insert(id.clone()), "{file}: NODE_ID {id} is used twice");
        let advertised = env.get("ADVERTISE_URL").map(String::as_str);
        let own_url = format!("http://{name}:{}", config.port);
        assert_eq!(advertised, Some(own_url.as_str()), "{file}: ADVERTISE_URL");

        let redis_url = config.redis_url.as_deref().expect("nodes need REDIS_URL");
        let redis_host = redis_url
            .trim_start_matches("redis://")
            .split([':', '/'])
            .next()
            .unwrap_or_default();
        let redis_image = compose["services"][redis_host]["image"].as_str();
        let major = redis_image
            .and_then(|image| image.strip_prefix("redis:"))
            .and_then(|tag| tag.split(['.', '-']).next()?.parse::<u32>().ok());
        assert!(
            major.is_some_and(|major| major >= 7),
            "{file}: REDIS_URL must name a compose service running Redis 7 or later, found {redis_image:?}"
        );

        let check = yaml_words(&service["healthcheck"]["test"]).join(" ");
        let (port, path) = http_target(&file, &check, &env);
        assert_eq!((port, path.as_str()), (config.port, "/health"), "{file}");
    }
}

#[test]
fn compose_stop_grace_period_outlasts_the_drain() {
    for (name, service) in compose_nodes(&compose()) {
        let file = format!("compose.yml service {name}");
        let config = accepted(&file, &string_map(&service["environment"]));
        let grace = service["stop_grace_period"]
            .as_str()
            .map(compose_duration)
            .expect("set stop_grace_period: Docker's default of 10 s cuts the drain short");
        let needed = config.drain_wait() + config.drain_spread() + DRAIN_EXIT_MARGIN;
        assert!(
            grace >= needed,
            "{file}: stop_grace_period {grace:?} < DRAIN_WAIT + DRAIN_SPREAD + {DRAIN_EXIT_MARGIN:?} = {needed:?}"
        );
    }
}

#[test]
fn compose_nginx_fronts_every_node() {
    let compose = compose();
    let nodes = compose_nodes(&compose);
    let nginx = &compose["services"]["nginx"];
    assert_eq!(nginx["image"].as_str(), Some("nginx:stable"));
    let volumes = yaml_words(&nginx["volumes"]);
    let mount = volumes
        .iter()
        .find(|v| v.starts_with("./nginx.conf:"))
        .expect("the nginx service must mount ./nginx.conf");
    let target = mount.split(':').nth(1).unwrap_or_default();
    for name in nodes.keys() {
        assert_eq!(
            nginx["depends_on"][name.as_str()]["condition"].as_str(),
            Some("service_healthy"),
            "nginx must wait for {name}: it resolves its upstream names at start-up"
        );
    }
    let published = yaml_words(&nginx["ports"]);
    let [mapping] = published.as_slice() else {
        panic!("nginx should publish one port, not {published:?}");
    };
    let container_port = mapping.rsplit(':').next().unwrap_or_default();

    let path = repo_file("docker/nginx.conf");
    if !path.exists() {
        eprintln!("SKIPPED: docker/nginx.conf does not exist yet; upstreams not checked");
        return;
    }
    let conf = nginx_statements(&read("docker/nginx.conf"));
    let upstreams: BTreeSet<String> = conf
        .iter()
        .filter(|(blocks, words)| {
            blocks.last().is_some_and(|b| b.starts_with("upstream")) && words[0] == "server"
        })
        .map(|(_, words)| words[1].clone())
        .collect();
    let node_addresses: BTreeSet<String> = nodes
        .iter()
        .map(|(name, service)| {
            let env = string_map(&service["environment"]);
            format!("{name}:{}", accepted(name, &env).port)
        })
        .collect();
    assert_eq!(upstreams, node_addresses, "nginx.conf upstream servers");
    let listens: Vec<&str> = conf
        .iter()
        .filter(|(_, words)| words[0] == "listen")
        .map(|(_, words)| words[1].rsplit(':').next().unwrap_or_default())
        .collect();
    assert!(
        listens.contains(&container_port),
        "compose publishes nginx's port {container_port}, nginx.conf listens on {listens:?}"
    );
    let whole_config = conf
        .iter()
        .any(|(blocks, _)| blocks.first().is_some_and(|b| b == "http"));
    let expected = if whole_config {
        "/etc/nginx/nginx.conf"
    } else {
        "/etc/nginx/conf.d/default.conf"
    };
    assert_eq!(target, expected, "where ./nginx.conf is mounted");
}

/// `docker/nginx-room-affinity.conf` is `docker/nginx.conf` with one change, so the two cannot
/// drift apart: `ip_hash` becomes a consistent hash on the query's `room`, or on the client's
/// address when the query has none.
#[test]
fn room_affinity_nginx_conf_differs_only_in_the_hash() {
    let ip_hash = nginx_statements(&read("docker/nginx.conf"));
    let affinity = nginx_statements(&read("docker/nginx-room-affinity.conf"));
    let in_upstream = |blocks: &[String]| blocks.last().is_some_and(|b| b.starts_with("upstream"));

    let method = |conf: &[(Vec<String>, Vec<String>)], name: &str| -> Vec<String> {
        let found: Vec<&Vec<String>> = conf
            .iter()
            .filter(|(blocks, words)| in_upstream(blocks) && words[0] == name)
            .map(|(_, words)| words)
            .collect();
        let [words] = found.as_slice() else {
            panic!("expected one `{name}` in the upstream, found {found:?}");
        };
        words[1..].to_vec()
    };
    assert_eq!(method(&ip_hash, "ip_hash"), Vec::<String>::new());
    let hashed = method(&affinity, "hash");
    let [key, consistent] = hashed.as_slice() else {
        panic!("hash {hashed:?}: expected `hash $KEY consistent`");
    };
    assert_eq!(
        consistent, "consistent",
        "consistent: a node added or removed remaps about 1/N of the rooms, not most"
    );

    let map_header = format!("map $arg_room {key}");
    let in_map = |blocks: &[String]| blocks.last().is_some_and(|b| *b == map_header);
    let mut entries: Vec<Vec<String>> = affinity
        .iter()
        .filter(|(blocks, _)| in_map(blocks))
        .map(|(_, words)| words.clone())
        .collect();
    entries.sort();
    let expected: Vec<Vec<String>> = [["''", "$remote_addr"], ["default", "$arg_room"]]
        .iter()
        .map(|entry| entry.iter().map(|w| w.to_string()).collect())
        .collect();
    assert_eq!(
        entries, expected,
        "`{map_header}`: the room, else the address"
    );

    let rest = |conf: &[(Vec<String>, Vec<String>)]| -> Vec<(Vec<String>, Vec<String>)> {
        conf.iter()
            .filter(|(blocks, words)| {
                !(in_map(blocks)
                    || in_upstream(blocks) && ["ip_hash", "hash"].contains(&&*words[0]))
            })
            .cloned()
            .collect()
    };
    assert_eq!(
        rest(&affinity),
        rest(&ip_hash),
        "nginx-room-affinity.conf and nginx.conf differ in more than the hash"
    );
}

fn compose() -> Yaml {
    yaml("docker/compose.yml").remove(0)
}

/// The switchboard services of compose.yml (those running the switchboard image), by name.
fn compose_nodes(compose: &Yaml) -> BTreeMap<String, Yaml> {
    let services = compose["services"]
        .as_hash()
        .expect("compose.yml has no services");
    services
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("switchboard"))
        })
        .map(|(name, s)| (name.as_str().unwrap_or_default().to_owned(), s.clone()))
        .collect()
}

/// A Compose duration (`45s`, `1m30s`, `500ms`).
fn compose_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("duration {text}"));
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "h" => Duration::from_secs(number * 3600),
            "m" => Duration::from_secs(number * 60),
            "s" => Duration::from_secs(number),
            "ms" => Duration::from_millis(number),
            other => panic!("unknown unit {other:?} in duration {text}"),
        };
        rest = &rest[unit..];
    }
    total
}

/// nginx.conf as statements, each with the blocks it sits in (`["http", "upstream nodes"]`)
/// and its words (`["server", "switchboard-1:3001"]`).
fn nginx_statements(conf: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let code: String = conf
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut blocks = Vec::new();
    let mut statements = Vec::new();
    let mut words = String::new();
    for c in code.chars() {
        match c {
            '{' => blocks.push(std::mem::take(&mut words).trim().to_owned()),
            '}' => {
                blocks.pop();
            }
            ';' => {
                let parts = std::mem::take(&mut words);
                let parts: Vec<String> = parts.split_whitespace().map(str::to_owned).collect();
                if !parts.is_empty() {
                    statements.push((blocks.clone(), parts));
                }
            }
            c => words.push(c),
        }
    }
    statements
}

// ---- Kubernetes ----------------------------------------------------------------------------

#[test]
fn kustomization_lists_every_manifest() {
    let listed: BTreeSet<String> = k8s_resources().into_iter().collect();
    let files: BTreeSet<String> = std::fs::read_dir(repo_file("docker/k8s"))
        .expect("docker/k8s")
        .map(|entry| entry.expect("docker/k8s entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, files,
        "kustomization.yaml resources vs docker/k8s/*.yaml"
    );
}

#[test]
fn k8s_deployment_matches_the_binary() {
    let deployment = k8s_object("Deployment", "switchboard");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = switchboard_container(&deployment);
    let env = container_env(container);
    let config = accepted("deployment.yaml", &env);

    let node_id = &container["env"]
        .as_vec()
        .and_then(|env| env.iter().find(|v| v["name"].as_str() == Some("NODE_ID")))
        .expect("NODE_ID is not set: pods would get random ids")["valueFrom"]["fieldRef"];
    assert_eq!(
        node_id["fieldPath"].as_str(),
        Some("metadata.name"),
        "NODE_ID source"
    );

    let declared = &container["ports"][0]["containerPort"];
    assert_eq!(
        container_port(container, declared),
        config.port,
        "containerPort"
    );
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} path");
        assert_eq!(
            container_port(container, &get["port"]),
            config.port,
            "{probe} port"
        );
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    if let Some(port) = annotations["prometheus.io/port"].as_str() {
        assert_eq!(
            port,
            config.port.to_string(),
            "prometheus.io/port annotation"
        );
    }

    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("set terminationGracePeriodSeconds: the default of 30 s cuts the drain short");
    let needed = config.drain_wait() + config.drain_spread() + DRAIN_EXIT_MARGIN;
    assert!(
        Duration::from_secs(grace.unsigned_abs()) >= needed,
        "terminationGracePeriodSeconds {grace} < DRAIN_WAIT + DRAIN_SPREAD + {DRAIN_EXIT_MARGIN:?} = {needed:?}"
    );

    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let user = pod["securityContext"]["runAsUser"].as_i64();
    assert!(user != Some(0), "runAsUser 0 contradicts runAsNonRoot");
    if k8s_object_exists("HorizontalPodAutoscaler", "switchboard") {
        assert!(
            deployment["spec"]["replicas"].is_badvalue(),
            "with an HPA, `replicas` in the Deployment resets the count (and drains pods) on every apply"
        );
    }
}

#[test]
fn k8s_service_pdb_and_hpa_point_at_the_deployment() {
    let deployment = k8s_object("Deployment", "switchboard");
    let pod_labels = string_map(&deployment["spec"]["template"]["metadata"]["labels"]);
    let container = switchboard_container(&deployment);
    let selects_pods = |selector: &Yaml, what: &str| {
        let selector = string_map(selector);
        assert!(!selector.is_empty(), "{what} has an empty selector");
        for (key, value) in &selector {
            assert_eq!(
                pod_labels.get(key),
                Some(value),
                "{what} selects {key}={value}"
            );
        }
    };

    let service = k8s_object("Service", "switchboard");
    selects_pods(&service["spec"]["selector"], "Service");
    let port = &service["spec"]["ports"][0]["targetPort"];
    let config = accepted("deployment.yaml", &container_env(container));
    assert_eq!(
        container_port(container, port),
        config.port,
        "Service targetPort"
    );
    assert_eq!(
        service["spec"]["sessionAffinity"].as_str(),
        Some("ClientIP")
    );

    let pdb = k8s_object("PodDisruptionBudget", "switchboard");
    selects_pods(
        &pdb["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget",
    );

    let hpa = k8s_object("HorizontalPodAutoscaler", "switchboard");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"], deployment["metadata"]["name"]);
    let metrics = hpa["spec"]["metrics"]
        .as_vec()
        .expect("the HPA has no metrics");
    let names = metrics
        .iter()
        .filter_map(|m| m["pods"]["metric"]["name"].as_str());
    let known = exported_metrics();
    for name in names {
        assert!(
            known.contains(name),
            "the HPA scales on {name}, which switchboard does not export"
        );
    }
}

/// Files named by kustomization.yaml's `resources`.
fn k8s_resources() -> Vec<String> {
    let kustomization = yaml("docker/k8s/kustomization.yaml").remove(0);
    yaml_words(&kustomization["resources"])
}

fn k8s_objects() -> Vec<Yaml> {
    let files = k8s_resources();
    files
        .iter()
        .flat_map(|file| yaml(&format!("docker/k8s/{file}")))
        .collect()
}

fn k8s_object_exists(kind: &str, name: &str) -> bool {
    k8s_objects()
        .into_iter()
        .any(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
}

fn k8s_object(kind: &str, name: &str) -> Yaml {
    k8s_objects()
        .into_iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in docker/k8s (kustomization resources)"))
}

fn switchboard_container(deployment: &Yaml) -> &Yaml {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_vec();
    containers
        .and_then(|all| {
            all.iter()
                .find(|c| c["name"].as_str() == Some("switchboard"))
        })
        .expect("the Deployment has no container named switchboard")
}

/// A probe's or Service's port (a number, or the name of one of the container's ports) as a
/// number.
fn container_port(container: &Yaml, port: &Yaml) -> u16 {
    let number = match port {
        Yaml::Integer(n) => Some(*n),
        Yaml::String(name) => container["ports"].as_vec().and_then(|ports| {
            let named = ports.iter().find(|p| p["name"].as_str() == Some(name));
            named?["containerPort"].as_i64()
        }),
        _ => None,
    };
    let number = number.unwrap_or_else(|| panic!("port {port:?} is not a container port"));
    u16::try_from(number).expect("port number")
}

/// A container's environment as switchboard sees it: `valueFrom` replaced by example values
/// of the right shape (a pod name, a pod IP, a placeholder secret), `$(NAME)` expanded like
/// the kubelet does (from variables defined earlier), and variables that only serve such
/// expansions left out.
fn container_env(container: &Yaml) -> BTreeMap<String, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut helpers = BTreeSet::new();
    for var in container["env"].as_vec().expect("the container has no env") {
        let name = var["name"].as_str().expect("env name").to_owned();
        let mut value = match (var["value"].as_str(), &var["valueFrom"]) {
            (Some(value), _) => value.to_owned(),
            (None, from) => match from["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => "switchboard-7d9c5b8f4-x2k8p".to_owned(),
                Some("status.podIP") => "10.1.2.3".to_owned(),
                Some(other) => panic!("{name} comes from {other}, which this test cannot fill"),
                None if !from["secretKeyRef"].is_badvalue() => "placeholder-secret".to_owned(),
                None => panic!("{name} has neither a value nor a known valueFrom"),
            },
        };
        for (earlier, earlier_value) in &env {
            let reference = format!("$({earlier})");
            if value.contains(&reference) {
                value = value.replace(&reference, earlier_value);
                helpers.insert(earlier.clone());
            }
        }
        assert!(
            !value.contains("$("),
            "{name}={value}: undefined or later $(VAR)"
        );
        env.push((name, value));
    }
    let options = options();
    env.into_iter()
        .filter(|(name, _)| options.contains_key(name) || !helpers.contains(name))
        .collect()
}

// ---- What the files refer to in the code ---------------------------------------------------

/// Every path a health check, probe or Prometheus scrape requests answers 200 from a freshly
/// started node.
#[tokio::test]
async fn probed_paths_are_served() {
    let mut paths = BTreeSet::new();
    let image = runtime_stage();
    let health = instruction(&image, "HEALTHCHECK").expect("HEALTHCHECK");
    paths.insert(http_target("Dockerfile", health, &dockerfile_env(&image)).1);
    for (name, service) in compose_nodes(&compose()) {
        let check = yaml_words(&service["healthcheck"]["test"]).join(" ");
        paths.insert(http_target(&name, &check, &string_map(&service["environment"])).1);
    }
    let deployment = k8s_object("Deployment", "switchboard");
    let container = switchboard_container(&deployment);
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if let Some(path) = container[probe]["httpGet"]["path"].as_str() {
            paths.insert(path.to_owned());
        }
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    if let Some(path) = annotations["prometheus.io/path"].as_str() {
        paths.insert(path.to_owned());
    }

    let config = Config::try_parse_from(["switchboard", "--host", "127.0.0.1"]).unwrap();
    let app = switchboard::app::build(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await });

    for path in &paths {
        let status = http_get_status(addr, path).await;
        assert_eq!(status, 200, "GET {path} on a fresh node");
    }
}

async fn http_get_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the node");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("receive");
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    status.unwrap_or_else(|| panic!("GET {path}: not an HTTP response: {response}"))
}

// ---- Shared helpers ------------------------------------------------------------------------

/// switchboard's options as `--help` lists them: environment variable → long flag.
fn options() -> BTreeMap<String, String> {
    Config::command()
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((env, arg.get_long()?.to_owned()))
        })
        .collect()
}

/// Checks that switchboard takes this environment: every variable is one of its options (or
/// in [`NOT_OPTIONS`]) and every value parses, as the same values given as flags. Returns the
/// resulting configuration, defaults filled in.
fn accepted(file: &str, env: &BTreeMap<String, String>) -> Config {
    let options = options();
    let mut argv = vec!["switchboard".to_owned()];
    for (name, value) in env {
        if NOT_OPTIONS.contains(&name.as_str()) {
            continue;
        }
        let flag = options.get(name).unwrap_or_else(|| {
            panic!(
                "{file} sets {name}, which is not a switchboard option (see `switchboard --help`)"
            )
        });
        argv.push(format!("--{flag}={value}"));
    }
    Config::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("switchboard refuses the settings of {file}:\n{e}"))
}

/// The port and path of the `http://host:port/path` URL in a health-check command, with
/// `${NAME}` taken from `env`.
fn http_target(what: &str, command: &str, env: &BTreeMap<String, String>) -> (u16, String) {
    let start = command
        .find("http://")
        .unwrap_or_else(|| panic!("{what} requests no http:// URL: {command}"));
    let url = command[start + "http://".len()..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .next()
        .unwrap_or_default();
    let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
    let port = authority.rsplit(':').next().unwrap_or_default();
    let port = match port.strip_prefix("${").and_then(|p| p.strip_suffix('}')) {
        Some(name) => env.get(name).map(String::as_str).unwrap_or_default(),
        None => port,
    };
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("{what}: no port in {url}"));
    (port, path.to_owned())
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The documents of a YAML file, merge keys resolved.
fn yaml(path: &str) -> Vec<Yaml> {
    let docs = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"));
    docs.into_iter().map(resolve_merge_keys).collect()
}

/// Applies YAML merge keys (`<<: *anchor`), which compose.yml uses: Docker Compose supports
/// them, YAML 1.2 parsers leave them as an ordinary `<<` key. Keys written beside the merge
/// win over merged ones.
fn resolve_merge_keys(node: Yaml) -> Yaml {
    match node {
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(resolve_merge_keys).collect()),
        Yaml::Hash(hash) => {
            let mut merged = Hash::new();
            let mut own = Hash::new();
            for (key, value) in hash {
                let value = resolve_merge_keys(value);
                if key.as_str() != Some("<<") {
                    own.insert(key, value);
                    continue;
                }
                let sources = match value {
                    Yaml::Array(sources) => sources,
                    source => vec![source],
                };
                for source in sources {
                    let Yaml::Hash(source) = source else {
                        panic!("`<<` merges a mapping, not {source:?}");
                    };
                    for (key, value) in source {
                        if !merged.contains_key(&key) {
                            merged.insert(key, value);
                        }
                    }
                }
            }
            for (key, value) in own {
                merged.insert(key, value);
            }
            Yaml::Hash(merged)
        }
        other => other,
    }
}

/// A mapping of scalars (an environment, labels) as strings; empty if absent.
fn string_map(node: &Yaml) -> BTreeMap<String, String> {
    let Some(hash) = node.as_hash() else {
        return BTreeMap::new();
    };
    hash.iter()
        .map(|(key, value)| (scalar(key), scalar(value)))
        .collect()
}

/// A sequence of scalars as strings; empty if absent.
fn yaml_words(node: &Yaml) -> Vec<String> {
    node.as_vec()
        .map(|items| items.iter().map(scalar).collect())
        .unwrap_or_default()
}

fn scalar(node: &Yaml) -> String {
    match node {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(n) => n.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}
