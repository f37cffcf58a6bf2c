//! The deployment files (`collector/Dockerfile`, `deploy/docker-compose.yml`,
//! `deploy/prometheus/prometheus.yml`, `deploy/k8s/*.yaml`) and Grafana provisioning
//! (`dashboards/provisioning/`) parse, and their ports, paths, variable names and settings match
//! the code's defaults. No container engine runs here, so this is what can be validated.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use shop::config::Service;
use tracelight_collector::config::{
    self as cfg, Config, DEFAULT_ADMIN_LISTEN, DEFAULT_GRPC_LISTEN, DEFAULT_HTTP_LISTEN,
    DEFAULT_QUERY_LISTEN, Setting,
};
use tracelight_dashboards::{dashboards_dir, repo_root, yaml};

fn port(addr: &str) -> u16 {
    addr.parse::<SocketAddr>().unwrap().port()
}

/// (name, port) of the collector's four listeners, from its defaults.
fn collector_ports() -> [(&'static str, u16); 4] {
    [
        ("otlp-grpc", port(DEFAULT_GRPC_LISTEN)),
        ("otlp-http", port(DEFAULT_HTTP_LISTEN)),
        ("query", port(DEFAULT_QUERY_LISTEN)),
        ("admin", port(DEFAULT_ADMIN_LISTEN)),
    ]
}

fn one(path: &str) -> Value {
    let mut docs = yaml::load(&repo_root().join(path)).unwrap();
    assert_eq!(docs.len(), 1, "{path}: one document");
    docs.remove(0)
}

fn str_map(v: &Value) -> HashMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), s)
        })
        .collect()
}

/// The collector configuration these variables produce, validated; unknown TRACELIGHT_*
/// names are an error (the collector would silently ignore them).
fn collector_config_from_env(place: &str, env: &HashMap<String, String>) -> Config {
    let known: BTreeSet<String> = Setting::ALL.iter().map(|s| s.env()).collect();
    for name in env.keys().filter(|k| k.starts_with("TRACELIGHT_")) {
        assert!(
            known.contains(name) || name == "TRACELIGHT_LOG_FORMAT",
            "{place}: {name} is no collector setting"
        );
    }
    let config = cfg::resolve(None, env, &[]).unwrap();
    config.clone().validate().unwrap();
    config
}

/// Listeners on every interface, on the default ports.
fn assert_listens_everywhere_on_default_ports(place: &str, c: &Config) {
    let listeners = [
        (c.receiver.grpc_listen, DEFAULT_GRPC_LISTEN),
        (c.receiver.http_listen, DEFAULT_HTTP_LISTEN),
        (c.query.listen, DEFAULT_QUERY_LISTEN),
        (c.admin.listen, DEFAULT_ADMIN_LISTEN),
    ];
    for (addr, default) in listeners {
        assert!(
            addr.ip().is_unspecified(),
            "{place}: {addr} is unreachable from outside the container"
        );
        assert_eq!(
            addr.port(),
            port(default),
            "{place}: {addr} is not on the default port of {default}"
        );
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_yaml_file_parses() {
    let mut files = Vec::new();
    yaml_files(&repo_root().join("deploy"), &mut files);
    yaml_files(&dashboards_dir().join("provisioning"), &mut files);
    assert!(files.len() >= 9, "{files:?}");
    for f in files {
        let docs = yaml::load(&f).unwrap();
        assert!(
            !docs.is_empty() && docs.iter().all(Value::is_object),
            "{}",
            f.display()
        );
    }
}

/// Dockerfile instructions of the last stage (continuation lines joined), and the stage count.
fn dockerfile(path: &str) -> (Vec<(String, String)>, usize) {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            joined.push(std::mem::take(&mut current));
        }
    }
    let instructions: Vec<(String, String)> = joined
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (op, rest) = l.split_once(' ').unwrap_or((l, ""));
            (op.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let stages = instructions.iter().filter(|(op, _)| op == "FROM").count();
    let last_from = instructions
        .iter()
        .rposition(|(op, _)| op == "FROM")
        .unwrap();
    (instructions[last_from..].to_vec(), stages)
}

#[test]
fn collector_dockerfile() {
    let (runtime, stages) = dockerfile("collector/Dockerfile");
    assert!(stages >= 2, "multi-stage build");
    let get = |op: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert!(get("FROM")[0].contains("distroless"), "small runtime image");
    let user = get("USER");
    assert_eq!(user.len(), 1);
    assert!(
        !user[0].starts_with('0') && !user[0].starts_with("root"),
        "non-root: {}",
        user[0]
    );
    let mut env = HashMap::new();
    for args in get("ENV") {
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let config = collector_config_from_env("collector/Dockerfile", &env);
    assert_listens_everywhere_on_default_ports("collector/Dockerfile", &config);
    let exposed: BTreeSet<u16> = get("EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .map(|p| p.parse().unwrap())
        .collect();
    let defaults: BTreeSet<u16> = collector_ports().iter().map(|(_, p)| *p).collect();
    assert_eq!(exposed, defaults, "EXPOSE the default ports");
    let volume = get("VOLUME")[0];
    let data_dir = config.storage.data_dir.to_str().unwrap();
    assert!(
        volume.contains(&format!("\"{data_dir}\"")),
        "VOLUME {volume} is the data dir {data_dir}"
    );
    assert!(get("ENTRYPOINT")[0].contains("tracelight-collector"));
}

#[test]
fn shop_dockerfile() {
    let (runtime, stages) = dockerfile("deploy/shop/Dockerfile");
    assert!(stages >= 2);
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "USER" && !a.starts_with('0'))
    );
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "ENTRYPOINT" && a.contains("/shop\""))
    );
}

/// (host, port) of a URL like `http://collector:4318/x`.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

/// Container ports published by a compose service (`[ip:]host:container`).
fn published(service: &Value) -> BTreeSet<u16> {
    service["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            p.as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn mounts(service: &Value) -> BTreeMap<String, String> {
    service["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            (parts[1].to_owned(), parts[0].to_owned())
        })
        .collect()
}

#[test]
fn compose_collector() {
    let compose = one("deploy/docker-compose.yml");
    let c = &compose["services"]["collector"];
    assert_eq!(c["build"]["context"], "..");
    assert_eq!(c["build"]["dockerfile"], "collector/Dockerfile");
    assert!(repo_root().join("collector/Dockerfile").is_file());
    let config = collector_config_from_env("compose collector", &str_map(&c["environment"]));
    assert_listens_everywhere_on_default_ports("compose collector", &config);
    let defaults: BTreeSet<u16> = collector_ports().iter().map(|(_, p)| *p).collect();
    assert_eq!(published(c), defaults);
    for p in c["ports"].as_array().unwrap() {
        assert!(
            p.as_str().unwrap().starts_with("127.0.0.1:"),
            "publish on the host's loopback: {p}"
        );
    }
    let data_dir = config.storage.data_dir.to_str().unwrap().to_owned();
    assert!(
        mounts(c).contains_key(&data_dir),
        "a volume on the data dir {data_dir}"
    );
}

#[test]
fn compose_shop() {
    let compose = one("deploy/docker-compose.yml");
    let services = &compose["services"];
    let otlp_http = port(DEFAULT_HTTP_LISTEN);
    for service in Service::ALL {
        let name = service.name();
        let s = &services[name];
        assert_eq!(
            s["command"][0], name,
            "compose service {name} runs `shop {name}`"
        );
        assert!(
            repo_root()
                .join(s["build"]["dockerfile"].as_str().unwrap())
                .is_file()
        );
        let env = str_map(&s["environment"]);
        assert_eq!(
            host_port(&env["OTEL_EXPORTER_OTLP_ENDPOINT"]),
            ("collector".to_owned(), otlp_http)
        );
        assert_eq!(env["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf");
        // Every service's own listen address, and the URL of each dependency.
        let addr: SocketAddr = env[service.addr_var()].parse().unwrap();
        assert!(
            addr.ip().is_unspecified(),
            "{name} listens on every interface"
        );
        assert_eq!(addr.port(), service.default_port(), "{name}");
        for dep in service.dependencies() {
            let url = &env[dep.url_var()];
            assert_eq!(
                host_port(url),
                (dep.name().to_owned(), dep.default_port()),
                "{name} → {}",
                dep.name()
            );
            assert!(services.get(dep.name()).is_some());
        }
    }
    assert_eq!(
        published(&services["gateway"]),
        BTreeSet::from([Service::Gateway.default_port()])
    );
}

#[test]
fn compose_prometheus_and_grafana() {
    let compose = one("deploy/docker-compose.yml");
    let services = &compose["services"];
    // Prometheus: its config file is mounted where its command reads it.
    let prom = &services["prometheus"];
    let args: Vec<&str> = prom["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_path = args
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .unwrap();
    assert_eq!(mounts(prom)[config_path], "./prometheus/prometheus.yml");
    let web = args
        .iter()
        .find_map(|a| a.strip_prefix("--web.listen-address="))
        .unwrap();
    let prom_port = port(web);

    // Grafana: provisioning and dashboards where the provider looks for them.
    let grafana = mounts(&services["grafana"]);
    let provider = one("dashboards/provisioning/dashboards/tracelight.yaml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(grafana[path], "../dashboards");
    assert_eq!(
        grafana["/etc/grafana/provisioning/dashboards"],
        "../dashboards/provisioning/dashboards"
    );
    assert_eq!(
        grafana["/etc/grafana/provisioning/datasources"],
        "../dashboards/provisioning/datasources"
    );
    let home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let file = home.strip_prefix(&format!("{path}/")).unwrap();
    assert!(
        dashboards_dir().join(file).is_file(),
        "home dashboard {home}"
    );

    // Data sources: the compose services, on their ports.
    let datasources = one("dashboards/provisioning/datasources/tracelight.yaml");
    let list = datasources["datasources"].as_array().unwrap();
    let by_type = |t: &str| list.iter().find(|d| d["type"] == t).unwrap();
    let p = by_type("prometheus");
    assert_eq!(
        host_port(p["url"].as_str().unwrap()),
        ("prometheus".to_owned(), prom_port)
    );
    assert_eq!(p["uid"], "tracelight-prometheus");
    assert_eq!(p["isDefault"], true);
    let j = by_type("jaeger");
    assert_eq!(j["uid"], "tracelight-jaeger");
    assert_eq!(
        host_port(j["url"].as_str().unwrap()),
        ("collector".to_owned(), port(DEFAULT_QUERY_LISTEN))
    );
    let exemplars = &p["jsonData"]["exemplarTraceIdDestinations"][0];
    assert_eq!(exemplars["datasourceUid"], j["uid"]);
    assert_eq!(j["jsonData"]["tracesToMetrics"]["datasourceUid"], p["uid"]);

    // R19: timeInterval equals the scrape interval.
    let scrape = one("deploy/prometheus/prometheus.yml");
    assert_eq!(
        p["jsonData"]["timeInterval"],
        scrape["global"]["scrape_interval"]
    );
}

#[test]
fn prometheus_scrapes_the_collector_and_every_shop_service() {
    let scrape = one("deploy/prometheus/prometheus.yml");
    let mut targets = BTreeSet::new();
    for job in scrape["scrape_configs"].as_array().unwrap() {
        assert!(
            job.get("metrics_path")
                .is_none_or(|p| p == tracelight_collector::admin::PATH_METRICS)
        );
        for sc in job["static_configs"].as_array().unwrap() {
            for t in sc["targets"].as_array().unwrap() {
                targets.insert(t.as_str().unwrap().to_owned());
            }
        }
    }
    let mut want = BTreeSet::from([format!("collector:{}", port(DEFAULT_ADMIN_LISTEN))]);
    for s in Service::ALL {
        want.insert(format!("{}:{}", s.name(), s.default_port()));
    }
    assert_eq!(targets, want);
}

fn k8s(kind: &str) -> Value {
    let mut files = Vec::new();
    yaml_files(&repo_root().join("deploy/k8s"), &mut files);
    files
        .iter()
        .flat_map(|f| yaml::load(f).unwrap())
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/k8s"))
}

#[test]
fn kubernetes_collector() {
    let cm = k8s("ConfigMap");
    let deployment = k8s("Deployment");
    let service = k8s("Service");
    let pvc = k8s("PersistentVolumeClaim");
    let kustomization = k8s("Kustomization");
    assert_eq!(kustomization["resources"].as_array().unwrap().len(), 4);

    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    // The ConfigMap's TOML is a valid collector config, mounted where --config reads it.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "--config");
    let config_path = Path::new(args[1]);
    let (key, toml_text) = cm["data"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(config_path.file_name().unwrap().to_str().unwrap(), key);
    let config = cfg::parse_file(config_path, toml_text.as_str().unwrap()).unwrap();
    config.clone().validate().unwrap();
    assert_listens_everywhere_on_default_ports("deploy/k8s/configmap.yaml", &config);
    assert_eq!(config.storage.backend, "embedded");

    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let mount = |path: &Path| {
        let m = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == path)
            .unwrap_or_else(|| panic!("nothing mounted at {}", path.display()));
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap()
            .clone()
    };
    assert_eq!(
        mount(config_path.parent().unwrap())["configMap"]["name"],
        cm["metadata"]["name"]
    );
    assert_eq!(
        mount(&config.storage.data_dir)["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert_eq!(
        deployment["spec"]["replicas"], 1,
        "one writer per data directory"
    );
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);

    // Ports by name, probes and scrape annotations on the admin port.
    let ports: BTreeMap<String, u64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = collector_ports()
        .iter()
        .map(|(n, p)| ((*n).to_owned(), u64::from(*p)))
        .collect();
    assert_eq!(ports, want);
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        tracelight_collector::admin::PATH_HEALTH
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        tracelight_collector::admin::PATH_READY
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"],
        port(DEFAULT_ADMIN_LISTEN).to_string()
    );
    assert_eq!(
        annotations["prometheus.io/path"],
        tracelight_collector::admin::PATH_METRICS
    );

    // The Service selects the pod and exposes the same ports.
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][k], v);
    }
    let service_ports: BTreeMap<String, u64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["targetPort"], p["name"]);
            (
                p["name"].as_str().unwrap().to_owned(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(service_ports, want);
}
