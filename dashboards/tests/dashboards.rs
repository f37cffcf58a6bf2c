//! The dashboards obey the mechanically checkable rules of `shared/reference/dashboards.md`
//! (a port of grafana/dashboard-linter's rules plus R1–R8, R13–R15).
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::BTreeSet;

use serde_json::Value;
use tracelight_dashboards::dashboard::{Dashboard, load_all};
use tracelight_dashboards::{dashboards_dir, promql};

const EXPECTED: [&str; 5] = [
    "collector.json",
    "service-graph.json",
    "service-red.json",
    "shop.json",
    "span-metrics.json",
];
const PROMETHEUS_DS: &str = "${datasource}";
const TRACES_DS: &str = "${traces_datasource}";
/// Grafana 10.3 – 11.x export this (R3).
const SCHEMA_VERSION: u64 = 39;
/// Core panel plugin ids (no external plugins to install).
const PANEL_TYPES: [&str; 6] = [
    "timeseries",
    "stat",
    "table",
    "heatmap",
    "nodeGraph",
    "state-timeline",
];
const BUILTINS: [&str; 6] = [
    "__rate_interval",
    "__interval",
    "__range",
    "__from",
    "__to",
    "__data",
];

fn dashboards() -> Vec<Dashboard> {
    let all = load_all(&dashboards_dir()).unwrap();
    let files: Vec<&str> = all.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files, EXPECTED);
    all
}

#[test]
fn identity_and_packaging() {
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for d in dashboards() {
        let j = &d.json;
        let f = &d.file;
        for block in ["__inputs", "__requires", "__elements"] {
            assert!(j.get(block).is_none(), "{f}: R1: no {block}");
        }
        assert!(j["id"].is_null(), "{f}: R2: id must be null");
        let uid = j["uid"].as_str().unwrap();
        assert!(
            uid.starts_with("tracelight-") && (8..=40).contains(&uid.len()),
            "{f}: R2: uid {uid}"
        );
        assert_eq!(
            uid,
            format!("tracelight-{}", f.trim_end_matches(".json")),
            "{f}: uid follows the file name"
        );
        assert!(uids.insert(uid.to_owned()), "{f}: duplicate uid");
        assert!(
            titles.insert(j["title"].as_str().unwrap().to_owned()),
            "{f}: duplicate title"
        );
        assert!(
            j["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "tracelight"),
            "{f}: R2: tag tracelight"
        );
        assert_eq!(j["schemaVersion"], SCHEMA_VERSION, "{f}: R3");
        assert_eq!(j["graphTooltip"], 1, "{f}: R14: shared crosshair");
        assert!(
            !j["description"].as_str().unwrap_or("").is_empty(),
            "{f}: description"
        );
        let link = &j["links"][0];
        assert!(
            link["keepTime"] == true && link["includeVars"] == true,
            "{f}: R4: links keep time and variables"
        );
    }
}

#[test]
fn variables() {
    for d in dashboards() {
        let f = &d.file;
        let ds = d
            .variable("datasource")
            .unwrap_or_else(|| panic!("{f}: R1: datasource variable"));
        assert_eq!(ds["type"], "datasource");
        assert_eq!(ds["query"], "prometheus");
        let uses_traces = d.panels().iter().any(|p| {
            p["datasource"]["uid"] == TRACES_DS || p.to_string().contains("traces_datasource")
        });
        match d.variable("traces_datasource") {
            Some(v) => {
                assert!(uses_traces, "{f}: traces_datasource declared but unused");
                assert_eq!(v["type"], "datasource");
                assert_eq!(v["query"], "jaeger");
            }
            None => assert!(
                !uses_traces,
                "{f}: R1: trace panels or links need $traces_datasource"
            ),
        }
        for v in d.variables() {
            let name = v["name"].as_str().unwrap();
            if let Some(current) = v.get("current") {
                assert!(
                    current.get("text").is_some() && current.get("value").is_some(),
                    "{f}: ${name}: R3: current needs text and value"
                );
            }
            if v["includeAll"] == true {
                assert!(
                    matches!(v["allValue"].as_str(), Some(".+" | ".*")),
                    "{f}: ${name}: R6: explicit allValue"
                );
            }
            if v["type"] == "query" {
                assert_eq!(
                    v["refresh"], 2,
                    "{f}: ${name}: R6: refresh on time-range change"
                );
                assert_eq!(v["sort"], 1, "{f}: ${name}: R6: sort");
                assert_eq!(v["datasource"]["uid"], PROMETHEUS_DS, "{f}: ${name}: R1");
                assert_eq!(v["query"], v["definition"], "{f}: ${name}");
            }
        }
    }
}

/// `$name` / `${name}` / `${name:fmt}` references in a string.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn panels_have_datasources_units_and_descriptions() {
    for d in dashboards() {
        let f = &d.file;
        let mut ids = BTreeSet::new();
        let defined: BTreeSet<String> = d
            .variables()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        for p in d.panels() {
            let title = p["title"].as_str().unwrap_or("");
            assert!(!title.is_empty(), "{f}: panel without title");
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{f}: {title}: duplicate id"
            );
            let grid = &p["gridPos"];
            assert!(
                grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
                "{f}: {title}: gridPos"
            );
            if p["type"] == "row" {
                continue;
            }
            let kind = p["type"].as_str().unwrap();
            assert!(
                PANEL_TYPES.contains(&kind),
                "{f}: {title}: panel type {kind} is not a core Grafana panel"
            );
            assert!(
                !p["description"].as_str().unwrap_or("").is_empty(),
                "{f}: {title}: R13 description"
            );
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(!unit.is_empty(), "{f}: {title}: R13 unit");
            let steps = &p["fieldConfig"]["defaults"]["thresholds"]["steps"];
            assert!(
                steps[0]["value"].is_null(),
                "{f}: {title}: R3 base threshold value null"
            );
            let panel_ds = p["datasource"]["uid"].as_str().unwrap_or("");
            assert!(
                panel_ds == PROMETHEUS_DS || panel_ds == TRACES_DS,
                "{f}: {title}: R1 datasource {panel_ds}"
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{f}: {title}: no targets");
            for t in targets {
                let ds = &t["datasource"];
                assert_eq!(ds, &p["datasource"], "{f}: {title}: R1 target datasource");
                let want_type = if ds["uid"] == PROMETHEUS_DS {
                    "prometheus"
                } else {
                    "jaeger"
                };
                assert_eq!(ds["type"], want_type, "{f}: {title}");
            }
            for name in references(&p.to_string()) {
                assert!(
                    defined.contains(&name)
                        || BUILTINS.contains(&name.as_str())
                        || name.starts_with("__"),
                    "{f}: {title}: undefined variable ${name}"
                );
            }
            if let Some(repeat) = p["repeat"].as_str() {
                assert!(
                    defined.contains(repeat),
                    "{f}: {title}: repeat over unknown ${repeat}"
                );
            }
        }
    }
}

fn check_expr(place: &str, expr: &str, target: &Value) {
    let usage = promql::analyze(expr);
    // R8: every rate window is $__rate_interval, except whole-range instant queries.
    for range in &usage.ranges {
        match range.as_str() {
            "$__rate_interval" => {}
            "$__range" => assert_eq!(
                target["instant"], true,
                "{place}: R8: [$__range] only in instant queries: {expr}"
            ),
            other => panic!("{place}: R8: fixed window [{other}] in {expr}"),
        }
    }
    // R6: no hard-coded job / namespace / cluster; matchers on variables only use =~.
    for (label, op, value) in &usage.matchers {
        assert!(
            !matches!(label.as_str(), "job" | "namespace" | "cluster"),
            "{place}: R6: {label}{op}{value:?}"
        );
        if value.contains('$') {
            assert_eq!(
                op, "=~",
                "{place}: multi-value variables need =~: {label}{op}{value:?}"
            );
        }
    }
    // R15: exemplars only on bucket queries (and none exist yet: text format 0.0.4).
    assert_ne!(
        target["exemplar"], true,
        "{place}: R15/R17: our metrics carry no exemplars"
    );
    if target["instant"] == true {
        assert_eq!(target["range"], false, "{place}: instant and range at once");
    }
    assert!(
        target["legendFormat"]
            .as_str()
            .is_some_and(|l| !l.is_empty()),
        "{place}: legend"
    );
}

#[test]
fn queries_follow_the_rules() {
    let mut n = 0;
    for d in dashboards() {
        for t in d.targets() {
            let place = format!("{} / {}", d.file, t.label());
            match t.datasource_type() {
                Some("prometheus") => {
                    n += 1;
                    check_expr(&place, t.expr().unwrap(), t.target);
                }
                Some("jaeger") => {
                    let kind = t.target["queryType"].as_str().unwrap();
                    assert!(
                        matches!(kind, "search" | "dependencyGraph"),
                        "{place}: queryType {kind}"
                    );
                    if kind == "search" {
                        assert_eq!(
                            t.target["service"], "$service",
                            "{place}: R14: search filtered by $service"
                        );
                    }
                }
                other => panic!("{place}: data source type {other:?}"),
            }
        }
        let stat_or_table = d
            .panels()
            .into_iter()
            .filter(|p| p["type"] == "stat" || p["type"] == "table");
        for p in stat_or_table {
            for t in p["targets"].as_array().unwrap() {
                if t["datasource"]["type"] == "prometheus" {
                    assert_eq!(
                        t["instant"], true,
                        "{} / {}: stat and table panels use instant queries",
                        d.file, p["title"]
                    );
                }
            }
        }
    }
    assert!(n > 90, "only {n} Prometheus targets");
}

#[test]
fn tables_merge_their_queries() {
    // R14: per-route / per-span tables: instant queries in table format, joined with Merge.
    for d in dashboards() {
        for p in d.panels() {
            if p["type"] != "table" || p["datasource"]["uid"] != PROMETHEUS_DS {
                continue;
            }
            let targets = p["targets"].as_array().unwrap();
            assert!(
                targets.iter().all(|t| t["format"] == "table"),
                "{} / {}: format table",
                d.file,
                p["title"]
            );
            assert_eq!(
                p["transformations"][0]["id"], "merge",
                "{} / {}",
                d.file, p["title"]
            );
        }
    }
}

#[test]
fn readme_lists_every_dashboard() {
    let readme = std::fs::read_to_string(dashboards_dir().join("README.md")).unwrap();
    for d in dashboards() {
        assert!(
            readme.contains(&d.file),
            "README.md does not mention {}",
            d.file
        );
        assert!(
            readme.contains(d.json["uid"].as_str().unwrap()),
            "README.md does not give the uid of {}",
            d.file
        );
    }
}
