//! Support for the checks in `tests/`: the Grafana dashboards (`*.json` beside this crate),
//! their provisioning files and the deployment files in `deploy/` are tested against the metric
//! names, label keys, ports and settings the code defines (dashboards.md R20).
//!
//! - [`promql`]: which metric and label names a PromQL expression uses;
//! - [`dashboard`]: loading the dashboards and walking their panels and targets;
//! - [`yaml`]: YAML files as [`serde_json::Value`] (with `<<` merge keys applied).
//!
//! The live counterpart, which runs every query against a real Prometheus, is
//! `.ci/e2e/dashboards.sh` with `e2e/check_queries.py`.

pub mod dashboard;
pub mod promql;
pub mod yaml;

use std::path::{Path, PathBuf};

/// The `dashboards/` directory (this crate's root).
pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    dashboards_dir()
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}
