//! Loading the dashboards and walking their panels and targets.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One dashboard file.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// File name, e.g. `service-red.json`.
    pub file: String,
    /// The parsed JSON.
    pub json: Value,
}

/// A panel's target (query), with the panel it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The panel.
    pub panel: &'a Value,
    /// The target.
    pub target: &'a Value,
}

impl Target<'_> {
    /// The data source type of the target (else of its panel): `prometheus`, `jaeger`, ...
    pub fn datasource_type(&self) -> Option<&str> {
        self.target
            .get("datasource")
            .or_else(|| self.panel.get("datasource"))
            .and_then(|d| d["type"].as_str())
    }

    /// The PromQL expression, for Prometheus targets.
    pub fn expr(&self) -> Option<&str> {
        self.target["expr"].as_str()
    }

    /// `panel title / refId`, for messages.
    pub fn label(&self) -> String {
        format!(
            "{} / {}",
            self.panel["title"].as_str().unwrap_or("?"),
            self.target["refId"].as_str().unwrap_or("?")
        )
    }
}

/// Every `*.json` file directly in `dir`, parsed, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Dashboard>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let json =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Dashboard { file, json })
        })
        .collect()
}

impl Dashboard {
    /// Every panel, rows and the panels inside collapsed rows included.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for panel in panels.as_array().into_iter().flatten() {
                out.push(panel);
                walk(&panel["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        out
    }

    /// Every target of every panel.
    pub fn targets(&self) -> Vec<Target<'_>> {
        self.panels()
            .into_iter()
            .flat_map(|panel| {
                panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |target| Target { panel, target })
            })
            .collect()
    }

    /// The template variables.
    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    /// The variable named `name`.
    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.variables().into_iter().find(|v| v["name"] == name)
    }
}
