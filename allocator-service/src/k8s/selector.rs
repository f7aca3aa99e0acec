//! Kubernetes label selectors (`matchLabels` and `matchExpressions`, also spelled
//! `match_labels` / `match_expressions` as the Go allocator's configuration accepts).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::field_selector::{FieldSelector, Kind, Selectable};

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

impl LabelSelector {
    /// A selector in the string form of Kubernetes' `labels.Parse` (what a list or watch takes
    /// as `labelSelector`, and Prometheus' Kubernetes SD `selectors[].label`): requirements
    /// separated by commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`,
    /// `key in (a,b)` or `key notin (a,b)`; the empty string selects everything. The numeric
    /// `key>n` / `key<n` are refused (no selector of ours needs them).
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut out = LabelSelector::default();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (requirement, after) = split_requirement(rest)?;
            out.match_expressions.push(requirement);
            rest = after.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
                if rest.is_empty() {
                    return Err(format!(
                        "{text:?}: a requirement is missing after the last comma"
                    ));
                }
            } else if !rest.is_empty() {
                return Err(format!("{text:?}: expected a comma before {rest:?}"));
            }
        }
        Ok(out)
    }
}

/// The selector Prometheus' Kubernetes SD lists one kind with: a label and a field selector,
/// both of which must select an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectSelector {
    pub label: LabelSelector,
    pub field: FieldSelector,
}

/// Prometheus' Kubernetes SD `selectors`: a selector for each kind of object the discovery of a
/// role lists (Prometheus passes them to the API server's list and watch; the allocator, which
/// lists every object once, applies them to its caches as the API server would). None selects
/// all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleSelectors {
    pub pod: Option<ObjectSelector>,
    pub service: Option<ObjectSelector>,
    pub endpointslice: Option<ObjectSelector>,
    pub endpoints: Option<ObjectSelector>,
    pub node: Option<ObjectSelector>,
}

/// One `selectors` entry: its role, label selector and field selector, as written.
pub struct SelectorEntry<'a> {
    pub role: &'a str,
    pub label: &'a str,
    pub field: &'a str,
}

impl RoleSelectors {
    /// The selectors of a discovery of `sd_role`, checked as Prometheus checks them (each role
    /// once, only the roles that discovery lists, label and field selectors that parse) and
    /// parsed. A field the API server does not serve for the kind is not an error here (the
    /// configuration loads; see [`RoleSelectors::refused`]). Errors say what is wrong with
    /// which entry (by index).
    pub fn parse(sd_role: &str, entries: &[SelectorEntry<'_>]) -> Result<Self, (usize, String)> {
        let allowed: &[&str] = match sd_role.to_ascii_lowercase().as_str() {
            "pod" => &["pod", "node"],
            "service" => &["service"],
            "endpointslice" => &["pod", "service", "endpointslice"],
            "endpoints" => &["pod", "service", "endpoints"],
            "node" => &["node"],
            _ => &[],
        };
        let mut out = RoleSelectors::default();
        for (i, e) in entries.iter().enumerate() {
            let role = e.role.to_ascii_lowercase();
            if !allowed.contains(&role.as_str()) {
                return Err((
                    i,
                    format!(
                        "role: {}: not a selector this allocator applies to {sd_role} discovery",
                        e.role
                    ),
                ));
            }
            let slot = match role.as_str() {
                "pod" => &mut out.pod,
                "service" => &mut out.service,
                "endpointslice" => &mut out.endpointslice,
                "endpoints" => &mut out.endpoints,
                _ => &mut out.node,
            };
            if slot.is_some() {
                return Err((i, format!("role: {}: given twice", e.role)));
            }
            let field = FieldSelector::parse(e.field)
                .map_err(|m| (i, format!("field: {:?}: {m}", e.field)))?;
            let label = LabelSelector::parse(e.label).map_err(|m| (i, format!("label: {m}")))?;
            *slot = Some(ObjectSelector { label, field });
        }
        Ok(out)
    }

    /// Whether `selector` (one of the fields) selects `object`. A field selector naming a field
    /// the API server does not serve for the kind selects nothing (the API server lists nothing
    /// with it).
    pub fn selects<O: Selectable>(selector: &Option<ObjectSelector>, object: &O) -> bool {
        let Some(s) = selector else {
            return true;
        };
        let none = BTreeMap::new();
        s.field.check(O::KIND).is_ok()
            && s.field.matches(object)
            && s.label
                .matches(object.object_meta().labels.as_ref().unwrap_or(&none))
    }

    /// Why the API server refuses to list a kind the discovery of `sd_role` (with node
    /// metadata when `attach_node`) lists, if it does: a field selector naming a field the
    /// kind does not serve (400 Bad Request). Prometheus' informer for that kind then never
    /// syncs, and its discoverer, which waits for all of its informers, sends no target: the
    /// discovery finds nothing (the allocator serves it so, never the role's every object).
    pub fn refused(&self, sd_role: &str, attach_node: bool) -> Option<String> {
        let node = attach_node.then_some((&self.node, Kind::Node));
        let lists: Vec<(&Option<ObjectSelector>, Kind)> = match sd_role {
            "pod" => [Some((&self.pod, Kind::Pod)), node]
                .into_iter()
                .flatten()
                .collect(),
            "service" => vec![(&self.service, Kind::Service)],
            "endpointslice" | "endpoints" => {
                let own = if sd_role == "endpoints" {
                    (&self.endpoints, Kind::Endpoints)
                } else {
                    (&self.endpointslice, Kind::EndpointSlice)
                };
                [
                    Some(own),
                    Some((&self.service, Kind::Service)),
                    Some((&self.pod, Kind::Pod)),
                    node,
                ]
                .into_iter()
                .flatten()
                .collect()
            }
            "node" => vec![(&self.node, Kind::Node)],
            _ => Vec::new(),
        };
        lists.into_iter().find_map(|(s, kind)| {
            let e = s.as_ref()?.field.check(kind).err()?;
            Some(format!("the {kind} selector's field: {e}"))
        })
    }
}

/// A label key as the API server checks it: an optional DNS subdomain prefix and `/`, then a
/// name of at most 63 characters of `[A-Za-z0-9._-]` starting and ending alphanumeric.
fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && valid_value(name)
}

/// A label value as the API server checks it: empty, or at most 63 characters of
/// `[A-Za-z0-9._-]` starting and ending alphanumeric.
fn valid_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

/// One requirement at the start of `text`, and what follows it.
fn split_requirement(text: &str) -> Result<(Requirement, &str), String> {
    let word_end = |s: &str| {
        s.find(|c: char| c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')' | '<' | '>'))
            .unwrap_or(s.len())
    };
    let requirement = |key: &str, operator: &str, values: Vec<String>| {
        if !valid_key(key) {
            return Err(format!("{key:?} is not a valid label key"));
        }
        if let Some(v) = values.iter().find(|v| !valid_value(v)) {
            return Err(format!("{v:?} is not a valid label value (key {key:?})"));
        }
        Ok(Requirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values,
        })
    };
    if let Some(r) = text.strip_prefix('!') {
        let r = r.trim_start();
        let end = word_end(r);
        return Ok((requirement(&r[..end], "DoesNotExist", vec![])?, &r[end..]));
    }
    let end = word_end(text);
    let key = &text[..end];
    let rest = text[end..].trim_start();
    let (operator, rest, set) = if let Some(r) = rest.strip_prefix("==") {
        ("In", r, false)
    } else if let Some(r) = rest.strip_prefix("!=") {
        ("NotIn", r, false)
    } else if let Some(r) = rest.strip_prefix('=') {
        ("In", r, false)
    } else if rest.starts_with('<') || rest.starts_with('>') {
        return Err(format!(
            "{key:?}: the numeric operators < and > are not supported"
        ));
    } else if let Some(r) = rest
        .strip_prefix("notin")
        .filter(|r| r.trim_start().starts_with('('))
    {
        ("NotIn", r, true)
    } else if let Some(r) = rest
        .strip_prefix("in")
        .filter(|r| r.trim_start().starts_with('('))
    {
        ("In", r, true)
    } else {
        // A bare key: it exists.
        return Ok((requirement(key, "Exists", vec![])?, rest));
    };
    let rest = rest.trim_start();
    if !set {
        let end = word_end(rest);
        return Ok((
            requirement(key, operator, vec![rest[..end].to_owned()])?,
            &rest[end..],
        ));
    }
    let inner = &rest[1..];
    let close = inner
        .find(')')
        .ok_or_else(|| format!("{key:?}: the value set has no closing parenthesis"))?;
    let values: Vec<String> = inner[..close]
        .split(',')
        .map(|v| v.trim().to_owned())
        .collect();
    if values == [""] {
        return Err(format!("{key:?}: the value set is empty"));
    }
    Ok((requirement(key, operator, values)?, &inner[close + 1..]))
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

    /// The string form's syntax errors, as Kubernetes' `labels.Parse` refuses them; what it
    /// accepts is checked against Prometheus' listing in `tests/k8s_sd_vectors.rs`.
    #[test]
    fn a_selector_string_that_does_not_parse_names_the_problem() {
        assert_eq!(LabelSelector::parse("").unwrap(), LabelSelector::default());
        assert_eq!(
            LabelSelector::parse("  a = b ")
                .unwrap()
                .match_expressions
                .len(),
            1
        );
        for (text, needle) in [
            ("a,", "after the last comma"),
            ("a b", "expected a comma"),
            ("a in ()", "value set is empty"),
            ("a in (b", "no closing parenthesis"),
            ("a>1", "numeric operators"),
            ("-a=b", "not a valid label key"),
            ("a=b c", "expected a comma"),
            ("a=-b", "not a valid label value"),
            ("Example.com/a=b", "not a valid label key"),
        ] {
            let e = LabelSelector::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let s = LabelSelector::parse("a in (x, y),!b,c,d!=e").unwrap();
        assert!(s.matches(&labels(&[("a", "y"), ("c", "")])));
        assert!(!s.matches(&labels(&[("a", "y"), ("c", ""), ("d", "e")])));
        assert!(!s.matches(&labels(&[("a", "y"), ("b", "1"), ("c", "")])));
    }

    /// Prometheus' rules for which selectors a discovery takes (which field selectors the API
    /// server takes is checked against a real one in `tests/apiserver.rs`).
    #[test]
    fn role_selectors_are_checked_as_prometheus_checks_them() {
        let e = |role, label, field| SelectorEntry { role, label, field };
        let ok = RoleSelectors::parse("pod", &[e("Pod", "a=b", ""), e("node", "c", "")]).unwrap();
        assert!(ok.pod.is_some() && ok.node.is_some() && ok.service.is_none());
        let ok = RoleSelectors::parse(
            "endpoints",
            &[
                e("endpoints", "a", ""),
                e("Service", "b", ""),
                e("pod", "c", ""),
            ],
        )
        .unwrap();
        assert!(ok.endpoints.is_some() && ok.service.is_some() && ok.pod.is_some());
        for (sd, entries, needle) in [
            ("service", vec![e("pod", "a", "")], "role: pod"),
            (
                "pod",
                vec![e("pod", "a", ""), e("Pod", "b", "")],
                "given twice",
            ),
            (
                "pod",
                vec![e("pod", "", "spec.nodeName")],
                "field: \"spec.nodeName\": ",
            ),
            ("ingress", vec![e("ingress", "a", "")], "role: ingress"),
            ("endpointslice", vec![e("node", "a", "")], "role: node"),
            (
                "endpoints",
                vec![e("endpointslice", "a", "")],
                "role: endpointslice",
            ),
            ("pod", vec![e("pod", "a in ()", "")], "label: "),
        ] {
            let (_, msg) = RoleSelectors::parse(sd, &entries).unwrap_err();
            assert!(msg.contains(needle), "{sd}: {msg}");
        }
    }

    /// Which kinds' lists a discovery waits for (Prometheus' discoverers wait for all of their
    /// informers): a field the API server does not serve for one of them leaves the discovery
    /// without targets; a selector of a kind it does not list (the node one without node
    /// metadata) changes nothing.
    #[test]
    fn a_refused_field_blanks_the_discoveries_that_list_its_kind() {
        let e = |role, field| SelectorEntry {
            role,
            label: "",
            field,
        };
        let pod_bad = [e("pod", "status.hostIP=a")];
        let node_bad = [e("node", "metadata.namespace=a")];
        let service_bad = [e("service", "spec.selector=a")];
        let refused = |sd: &str, entries: &[SelectorEntry<'_>], node: bool| {
            RoleSelectors::parse(sd, entries).unwrap().refused(sd, node)
        };
        for sd in ["pod", "endpointslice", "endpoints"] {
            let e = refused(sd, &pod_bad, false).unwrap();
            assert!(
                e.contains("pods") && e.contains("status.hostIP"),
                "{sd}: {e}"
            );
        }
        for sd in ["endpointslice", "endpoints", "service"] {
            assert!(refused(sd, &service_bad, false).is_some(), "{sd}");
        }
        assert!(refused("pod", &node_bad, false).is_none());
        assert!(refused("pod", &node_bad, true).is_some());
        assert!(refused("node", &node_bad, false).is_some());
        let fine = [e("pod", "spec.host=n,status.podIPs=")];
        assert!(refused("pod", &fine, true).is_none());
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
