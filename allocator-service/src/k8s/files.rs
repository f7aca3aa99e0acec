//! `file_sd_configs` of ScrapeConfig resources: the files are read on every processing pass
//! (they are small, and a pass runs at most every 5 s). A `*` is allowed in the last path
//! component, as Prometheus allows; an unreadable or malformed file is logged and contributes
//! no targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::meta::Labels;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn matching(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !name.contains('*') {
        return vec![path.to_path_buf()];
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob(name, n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The target label sets of the files `path` names (JSON for `.json`, YAML otherwise).
pub fn read_groups(path: &Path) -> Vec<Labels> {
    let mut out = Vec::new();
    for file in matching(path) {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                if file.extension().is_some_and(|e| e == "json") {
                    serde_json::from_str::<Vec<Group>>(&text).map_err(|e| e.to_string())
                } else {
                    serde_yaml::from_str::<Vec<Group>>(&text).map_err(|e| e.to_string())
                }
            });
        match parsed {
            Ok(groups) => {
                for g in groups {
                    for t in g.targets {
                        let mut l = g.labels.clone();
                        l.insert("__address__".into(), t);
                        l.insert(
                            "__meta_filepath".into(),
                            file.to_string_lossy().into_owned(),
                        );
                        out.push(l);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "file_sd file unreadable; no targets from it")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_the_last_path_component_of_prometheus_file_sd() {
        assert!(glob("*.json", "a.json") && !glob("*.json", "a.yaml"));
        assert!(glob("t-*-x.yml", "t-1-x.yml") && !glob("t-*-x.yml", "t-1-y.yml"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }

    #[test]
    fn reads_json_and_yaml_groups_with_the_file_path_label() {
        let dir = std::env::temp_dir().join(format!("ta-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.json"),
            r#"[{"targets": ["h:1", "h:2"], "labels": {"env": "x"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.join("b.yaml"), "- targets: ['h:3']\n").unwrap();
        std::fs::write(dir.join("c.json"), "not json").unwrap();
        let got = read_groups(&dir.join("*.json"));
        assert_eq!(got.len(), 2, "the malformed file gives nothing");
        assert_eq!(got[0]["env"], "x");
        assert!(got[0]["__meta_filepath"].ends_with("a.json"));
        assert_eq!(read_groups(&dir.join("b.yaml"))[0]["__address__"], "h:3");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
