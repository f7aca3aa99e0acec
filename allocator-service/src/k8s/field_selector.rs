//! Kubernetes field selectors (what a list or watch takes as `fieldSelector`, and Prometheus'
//! Kubernetes SD `selectors[].field`), evaluated over cached objects as the API server evaluates
//! them: the grammar of `k8s.io/apimachinery/pkg/fields` (`ParseSelector`), the fields each kind
//! serves (its field label conversion: a field it does not know makes the API server answer
//! 400 Bad Request), and each field's value as the kind's registry computes it
//! (`ToSelectableFields` / `GetAttrs` in kube-apiserver's `pkg/registry`). Checked against a
//! real kube-apiserver in `tests/apiserver.rs`.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ObjectMeta;

/// A parsed field selector: every term must hold (terms are joined by commas). Empty selects
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    equal: bool,
    value: String,
}

/// Why a field selector is refused: by `fields.ParseSelector` (Prometheus refuses such a
/// configuration), or, for a kind, by the API server's field label conversion (it answers the
/// list with 400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSelectorError {
    /// A term without `=`, `==` or `!=`.
    NoOperator { term: String },
    /// A backslash not followed by `\`, `,` or `=` (or at the end of a value).
    InvalidEscape { sequence: String },
    /// A `,` or `=` in a value that is not escaped by a backslash.
    UnescapedRune { rune: char },
    /// A field the API server does not serve for this kind.
    UnsupportedField { kind: Kind, field: String },
}

impl fmt::Display for FieldSelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoOperator { term } => {
                write!(f, "{term:?} has no operator (=, == or !=)")
            }
            Self::InvalidEscape { sequence } => {
                write!(
                    f,
                    "invalid escape sequence {sequence:?} (only \\\\, \\, and \\= are)"
                )
            }
            Self::UnescapedRune { rune } => {
                write!(f, "unescaped {rune:?} in a value (write \\{rune})")
            }
            Self::UnsupportedField { kind, field } => write!(
                f,
                "field {field:?} is not a field selector the API server supports for {kind} \
                 (it answers such a list with 400 Bad Request); supported: {}",
                kind.fields().join(", ")
            ),
        }
    }
}

impl std::error::Error for FieldSelectorError {}

/// The kinds Kubernetes SD lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Service,
    Endpoints,
    EndpointSlice,
    Node,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslices",
            Kind::Node => "nodes",
        })
    }
}

impl Kind {
    /// The field labels the API server's conversion accepts for the kind (v1 Pod, Node and
    /// Service register their own; Endpoints and EndpointSlice take the default, name and
    /// namespace). A pod's `spec.host` is the old name of `spec.nodeName`.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
                "spec.host",
            ],
            Kind::Node => &["metadata.name", "spec.unschedulable"],
            Kind::Service => &[
                "metadata.namespace",
                "metadata.name",
                "spec.clusterIP",
                "spec.type",
            ],
            Kind::Endpoints | Kind::EndpointSlice => &["metadata.name", "metadata.namespace"],
        }
    }
}

impl FieldSelector {
    /// Parse as `fields.ParseSelector` does: terms split at commas not escaped by a backslash,
    /// empty terms skipped; each term split at the first `!=`, `==` or `=` (no trimming: spaces
    /// belong to the field or the value); a value may escape `\`, `,` and `=` with a backslash
    /// and must escape `,` and `=`. The field is not checked here (see [`FieldSelector::check`]).
    pub fn parse(text: &str) -> Result<FieldSelector, FieldSelectorError> {
        // Sorted as the Go parser sorts them: the AND does not depend on the order, but which
        // term is refused first does.
        let mut parts = split_terms(text);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let (field, equal, raw) =
                split_term(part).ok_or_else(|| FieldSelectorError::NoOperator {
                    term: part.to_owned(),
                })?;
            terms.push(Term {
                field: field.to_owned(),
                equal,
                value: unescape(raw)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Every field is one the API server serves for `kind` (else it refuses the list).
    pub fn check(&self, kind: Kind) -> Result<(), FieldSelectorError> {
        match self
            .terms
            .iter()
            .find(|t| !kind.fields().contains(&t.field.as_str()))
        {
            Some(t) => Err(FieldSelectorError::UnsupportedField {
                kind,
                field: t.field.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The terms as (field, operator, value), the operator `=` (for `=` and `==`) or `!=`, in
    /// the order of their text (as `fields.Selector`'s `Requirements`).
    pub fn terms(&self) -> impl Iterator<Item = (&str, &'static str, &str)> {
        self.terms.iter().map(|t| {
            let op = if t.equal { "=" } else { "!=" };
            (t.field.as_str(), op, t.value.as_str())
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the object's fields satisfy every term. A field the kind does not serve reads
    /// as empty (as a missing key of the API server's field set); [`FieldSelector::check`]
    /// says whether the API server would list with the selector at all.
    pub fn matches<O: Selectable>(&self, o: &O) -> bool {
        self.terms
            .iter()
            .all(|t| (o.field(&t.field).as_ref() == t.value) == t.equal)
    }
}

/// The terms of a selector, split at unescaped commas (a backslash keeps the next character in
/// its term), escapes kept (`splitTerms`).
fn split_terms(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in text.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            out.push(&text[start..i]);
            start = i + 1;
        }
    }
    out.push(&text[start..]);
    out
}

/// A term split at the first operator from the left, `!=` and `==` before `=` at the same
/// place (`splitTerm`): (field, equal, raw value).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, equal) in [("!=", false), ("==", true), ("=", true)] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], equal, value));
            }
        }
    }
    None
}

/// A value without its escapes (`UnescapeValue`).
fn unescape(raw: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::InvalidEscape {
                    sequence: format!("\\{c}"),
                });
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedRune { rune: c }),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscape {
            sequence: "\\".into(),
        });
    }
    Ok(out)
}

/// An object a field selector can select: its kind and the value of each field the kind
/// serves, as the API server computes it from the stored object.
pub trait Selectable {
    const KIND: Kind;
    fn object_meta(&self) -> &ObjectMeta;
    /// The value of `field` (one of `KIND.fields()`); empty for any other.
    fn field(&self, field: &str) -> Cow<'_, str>;
}

fn text(s: Option<&String>) -> Cow<'_, str> {
    Cow::Borrowed(s.map(String::as_str).unwrap_or_default())
}

/// `metadata.name` and, for a namespaced kind, `metadata.namespace`.
fn meta_field<'a>(m: &'a ObjectMeta, field: &str, namespaced: bool) -> Cow<'a, str> {
    match field {
        "metadata.name" => text(m.name.as_ref()),
        "metadata.namespace" if namespaced => text(m.namespace.as_ref()),
        _ => Cow::Borrowed(""),
    }
}

impl Selectable for Pod {
    const KIND: Kind = Kind::Pod;
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn field(&self, field: &str) -> Cow<'_, str> {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        match field {
            "spec.nodeName" | "spec.host" => text(spec.and_then(|s| s.node_name.as_ref())),
            "spec.restartPolicy" => text(spec.and_then(|s| s.restart_policy.as_ref())),
            "spec.schedulerName" => text(spec.and_then(|s| s.scheduler_name.as_ref())),
            "spec.serviceAccountName" => text(spec.and_then(|s| s.service_account_name.as_ref())),
            // The internal pod keeps it in its security context, false when unset.
            "spec.hostNetwork" => {
                let on = spec.and_then(|s| s.host_network).unwrap_or(false);
                Cow::Borrowed(if on { "true" } else { "false" })
            }
            "status.phase" => text(status.and_then(|s| s.phase.as_ref())),
            // The first of the internal pod's IPs, into which the v1 `podIP` converts when set
            // (it wins over a differing `podIPs[0]`).
            "status.podIP" => text(status.and_then(|s| {
                s.pod_ip.as_ref().filter(|ip| !ip.is_empty()).or_else(|| {
                    s.pod_ips
                        .as_ref()
                        .and_then(|ips| ips.first())
                        .map(|ip| &ip.ip)
                })
            })),
            "status.nominatedNodeName" => text(status.and_then(|s| s.nominated_node_name.as_ref())),
            // `status.podIPs` is accepted but not in the pod's field set: it reads as empty.
            other => meta_field(&self.metadata, other, true),
        }
    }
}

impl Selectable for Service {
    const KIND: Kind = Kind::Service;
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn field(&self, field: &str) -> Cow<'_, str> {
        let spec = self.spec.as_ref();
        match field {
            "spec.clusterIP" => text(spec.and_then(|s| s.cluster_ip.as_ref())),
            "spec.type" => text(spec.and_then(|s| s.type_.as_ref())),
            other => meta_field(&self.metadata, other, true),
        }
    }
}

impl Selectable for Endpoints {
    const KIND: Kind = Kind::Endpoints;
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn field(&self, field: &str) -> Cow<'_, str> {
        meta_field(&self.metadata, field, true)
    }
}

impl Selectable for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn field(&self, field: &str) -> Cow<'_, str> {
        meta_field(&self.metadata, field, true)
    }
}

impl Selectable for Node {
    const KIND: Kind = Kind::Node;
    fn object_meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn field(&self, field: &str) -> Cow<'_, str> {
        match field {
            "spec.unschedulable" => {
                let on = self
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false);
                Cow::Borrowed(if on { "true" } else { "false" })
            }
            other => meta_field(&self.metadata, other, false),
        }
    }
}

/// The caches hold shared objects.
impl<T: Selectable> Selectable for std::sync::Arc<T> {
    const KIND: Kind = T::KIND;
    fn object_meta(&self) -> &ObjectMeta {
        (**self).object_meta()
    }
    fn field(&self, field: &str) -> Cow<'_, str> {
        (**self).field(field)
    }
}
