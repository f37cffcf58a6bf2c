//! YAML documents as [`serde_json::Value`], so the tests navigate compose files, Kubernetes
//! manifests and Grafana provisioning with the same indexing as the dashboards' JSON.

use std::path::Path;

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Why a YAML file could not be read.
#[derive(Debug)]
pub struct YamlError(pub String);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for YamlError {}

/// Every document of a (possibly multi-document) YAML text. Aliases are resolved and `<<`
/// merge keys applied (keys already present win, as in YAML 1.1's merge key type).
pub fn parse(text: &str) -> Result<Vec<Value>, YamlError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| YamlError(e.to_string()))?;
    docs.iter().map(to_json).collect()
}

/// [`parse`] of a file; the error names the file.
pub fn load(path: &Path) -> Result<Vec<Value>, YamlError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| YamlError(format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|e| YamlError(format!("{}: {e}", path.display())))
}

fn to_json(yaml: &Yaml) -> Result<Value, YamlError> {
    Ok(match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(text.clone()), Value::Number),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            let mut merged = Vec::new();
            for (k, v) in hash {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    other => return Err(YamlError(format!("unsupported mapping key {other:?}"))),
                };
                if key == "<<" {
                    match to_json(v)? {
                        Value::Object(m) => merged.push(m),
                        Value::Array(list) => {
                            merged.extend(list.into_iter().filter_map(|v| match v {
                                Value::Object(m) => Some(m),
                                _ => None,
                            }));
                        }
                        _ => return Err(YamlError("`<<` must merge a mapping".to_owned())),
                    }
                } else {
                    map.insert(key, to_json(v)?);
                }
            }
            for m in merged {
                for (k, v) in m {
                    map.entry(k).or_insert(v);
                }
            }
            Value::Object(map)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(YamlError(format!("unresolvable YAML node {yaml:?}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_and_anchors() {
        let docs = parse(
            "a: &base\n  x: 1\n  y: two\nb:\n  <<: *base\n  y: three\n---\n- 1.5\n- true\n- ~\n",
        )
        .expect("valid YAML");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["b"]["x"], 1);
        assert_eq!(docs[0]["b"]["y"], "three");
        assert_eq!(docs[1][0], 1.5);
        assert_eq!(docs[1][1], true);
        assert!(docs[1][2].is_null());
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(parse("a: [1, 2").is_err());
    }
}
