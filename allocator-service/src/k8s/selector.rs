//! Kubernetes label selectors (`matchLabels` and `matchExpressions`, also spelled
//! `match_labels` / `match_expressions` as the Go allocator's configuration accepts).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, rename = "matchLabels", alias = "match_labels")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, rename = "matchExpressions", alias = "match_expressions")]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Check operators and values as the API server does; errors name the requirement.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.match_expressions {
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(format!(
                        "matchExpressions key {:?}: {} needs values",
                        r.key, r.operator
                    ))
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(format!(
                        "matchExpressions key {:?}: {} takes no values",
                        r.key, r.operator
                    ))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(format!(
                        "matchExpressions key {:?}: unknown operator {other:?}",
                        r.key
                    ))
                }
            }
        }
        Ok(())
    }

    /// Whether the labels satisfy every requirement (an empty selector selects everything).
    /// A selector that does not validate selects nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.validate().is_err() {
            return false;
        }
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    _ => value.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(yaml: &str) -> LabelSelector {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn match_labels_and_every_operator() {
        let l = labels(&[("app", "api"), ("tier", "web")]);
        assert!(sel("{}").matches(&l));
        assert!(sel("{matchLabels: {app: api}}").matches(&l));
        assert!(
            sel("{match_labels: {app: api}}").matches(&l),
            "snake_case spelling"
        );
        assert!(!sel("{matchLabels: {app: db}}").matches(&l));
        assert!(
            sel("{matchExpressions: [{key: tier, operator: In, values: [web, api]}]}").matches(&l)
        );
        assert!(
            !sel("{matchExpressions: [{key: tier, operator: NotIn, values: [web]}]}").matches(&l)
        );
        assert!(sel("{matchExpressions: [{key: zone, operator: NotIn, values: [a]}]}").matches(&l));
        assert!(sel("{matchExpressions: [{key: app, operator: Exists}]}").matches(&l));
        assert!(!sel("{matchExpressions: [{key: app, operator: DoesNotExist}]}").matches(&l));
        assert!(
            !sel("{matchLabels: {app: api}, matchExpressions: [{key: x, operator: Exists}]}")
                .matches(&l)
        );
    }

    #[test]
    fn invalid_requirements_are_errors_and_select_nothing() {
        let s = sel("{matchExpressions: [{key: app, operator: Like, values: [a]}]}");
        assert!(s.validate().unwrap_err().contains("Like"));
        assert!(!s.matches(&labels(&[("app", "a")])));
        assert!(sel("{matchExpressions: [{key: app, operator: In}]}")
            .validate()
            .is_err());
        assert!(
            sel("{matchExpressions: [{key: app, operator: Exists, values: [x]}]}")
                .validate()
                .is_err()
        );
    }
}
