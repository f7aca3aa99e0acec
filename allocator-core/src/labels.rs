//! Label sets as the Go allocator sees them: the relabeling builder whose range order decides
//! the item hash, and the node a target runs on (for `per-node`).

use crate::error::Error;
use crate::hashing::KeyHasher;
use crate::ids::TargetKey;

/// A label set being relabeled, with the semantics of Prometheus' `labels.Builder`.
///
/// The Go allocator hashes a target in the builder's range order: the discovered labels in sorted
/// order (skipping deleted or overwritten ones), **then** the labels set during relabeling in the
/// order they were first set. Reproducing that order is what makes our keys equal to Go's.
///
/// ```
/// use allocator_core::{LabelBuilder, TargetKey};
/// let mut b = LabelBuilder::new([("__address__", "10.0.0.1:9100"), ("a", "1")]).unwrap();
/// b.set("job", "node");
/// // `job` was added, so it hashes after the sorted discovered labels, not in sorted position.
/// let order: Vec<_> = b.range().map(|(n, _)| n).collect();
/// assert_eq!(order, ["__address__", "a", "job"]);
/// # let _ = b.target_key("node");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelBuilder {
    base: Vec<(String, String)>,
    add: Vec<(String, String)>,
    del: Vec<String>,
}

impl LabelBuilder {
    /// A builder over discovered labels (any order; each name once).
    pub fn new<'a, I>(labels: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut base: Vec<(String, String)> = labels
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        base.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = base.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateLabel(w[0].0.clone()));
        }
        // As Prometheus' `Builder.Reset`, which the Go allocator calls on every target: a
        // discovered label with an empty value is deleted (not ranged, not hashed).
        let del = base
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        Ok(LabelBuilder {
            base,
            add: Vec::new(),
            del,
        })
    }

    /// The discovered labels, sorted, as they were before any change.
    pub fn discovered(&self) -> &[(String, String)] {
        &self.base
    }

    /// The current value of a label (`None` when absent or deleted).
    pub fn get(&self, name: &str) -> Option<&str> {
        // Set() does not clear a name from `del`, so `add` is checked first, as in Prometheus.
        if let Some((_, v)) = self.add.iter().find(|(n, _)| n == name) {
            return Some(v);
        }
        if self.del.iter().any(|n| n == name) {
            return None;
        }
        self.base
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.base[i].1.as_str())
    }

    /// Set a label. An empty value deletes it, as in Prometheus.
    pub fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.del(name);
            return;
        }
        if let Some(slot) = self.add.iter_mut().find(|(n, _)| n == name) {
            value.clone_into(&mut slot.1);
            return;
        }
        self.add.push((name.to_owned(), value.to_owned()));
    }

    /// Delete a label.
    pub fn del(&mut self, name: &str) {
        self.add.retain(|(n, _)| n != name);
        self.del.push(name.to_owned());
    }

    /// The labels in the builder's range order (the order the item hash uses).
    pub fn range(&self) -> impl Iterator<Item = (&str, &str)> {
        let kept = self.base.iter().filter(move |(n, _)| {
            !self.del.iter().any(|d| d == n) && !self.add.iter().any(|(a, _)| a == n)
        });
        kept.chain(self.add.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The final label set in sorted order.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .range()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The target's identity after relabeling (DESIGN.md §6.2, `filter_strategy: relabel-config`).
    pub fn target_key(&self, job: &str) -> TargetKey {
        self.target_key_with(&mut KeyHasher::new(), job)
    }

    /// Like [`LabelBuilder::target_key`], reusing a hasher's buffers.
    pub fn target_key_with(&self, hasher: &mut KeyHasher, job: &str) -> TargetKey {
        hasher.key_in_order(self.range(), job)
    }
}

/// The node a target runs on, from its discovered (pre-relabel) labels (DESIGN.md §6.5):
/// the first non-empty of the pod, node and endpoint node names; else the endpoint slice's
/// target name when its target kind is `Node`; else none.
///
/// ```
/// use allocator_core::node_of;
/// assert_eq!(node_of([("__meta_kubernetes_pod_node_name", "n1")]), Some("n1"));
/// assert_eq!(node_of([("__address__", "a:1")]), None);
/// ```
pub fn node_of<'a, I>(labels: I) -> Option<&'a str>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut finder = NodeFinder::default();
    for (name, value) in labels {
        finder.observe(name.as_bytes(), value.as_bytes());
    }
    // The value came from a `&str`, so it is UTF-8.
    finder.finish().and_then(|v| std::str::from_utf8(v).ok())
}

/// The labels that name a target's node, gathered in one pass over a label set.
#[derive(Default)]
pub(crate) struct NodeFinder<'a> {
    /// Pod, node and endpoint node names, in precedence order.
    ranked: [Option<&'a [u8]>; 3],
    slice_kind: Option<&'a [u8]>,
    slice_name: Option<&'a [u8]>,
}

impl<'a> NodeFinder<'a> {
    #[inline]
    pub(crate) fn observe(&mut self, name: &[u8], value: &'a [u8]) {
        // Each name that matters has its own length (27, 31, 36; two of 51 that differ in
        // their last 4 bytes): the length picks the one candidate, compared whole and inline.
        match name.len() {
            27 if name == b"__meta_kubernetes_node_name" => self.ranked[1] = Some(value),
            31 if name == b"__meta_kubernetes_pod_node_name" => self.ranked[0] = Some(value),
            36 if name == b"__meta_kubernetes_endpoint_node_name" => self.ranked[2] = Some(value),
            51 if name == b"__meta_kubernetes_endpointslice_address_target_kind" => {
                self.slice_kind = Some(value)
            }
            51 if name == b"__meta_kubernetes_endpointslice_address_target_name" => {
                self.slice_name = Some(value)
            }
            _ => {}
        }
    }

    pub(crate) fn finish(self) -> Option<&'a [u8]> {
        if let Some(node) = self.ranked.into_iter().flatten().find(|v| !v.is_empty()) {
            return Some(node);
        }
        match (self.slice_kind, self.slice_name) {
            (Some(b"Node"), Some(name)) if !name.is_empty() => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_ranges_kept_discovered_labels_sorted_then_set_labels_in_set_order() {
        let mut b =
            LabelBuilder::new([("z", "1"), ("a", "2"), ("m", "3"), ("__meta_x", "4")]).unwrap();
        b.set("job", "j");
        b.set("a", "overwritten"); // moves `a` to the set section
        b.del("m");
        b.set("job", "j2"); // keeps its first position
        let got: Vec<_> = b.range().collect();
        assert_eq!(
            got,
            [
                ("__meta_x", "4"),
                ("z", "1"),
                ("job", "j2"),
                ("a", "overwritten")
            ]
        );
        assert_eq!(b.get("m"), None);
        assert_eq!(b.get("a"), Some("overwritten"));
        // Setting an empty value deletes, and a later set appends at the end.
        b.set("z", "");
        assert_eq!(b.get("z"), None);
        b.set("z", "back");
        let names: Vec<_> = b.range().map(|(n, _)| n).collect();
        assert_eq!(names, ["__meta_x", "job", "a", "z"]);
        assert_eq!(
            b.labels()
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["__meta_x", "a", "job", "z"]
        );
    }

    #[test]
    fn item_hash_skips_meta_labels_and_ignores_input_order() {
        let a = KeyHasher::new()
            .key_of([("b", "2"), ("a", "1"), ("__meta_k", "v")], "j")
            .unwrap();
        let b = KeyHasher::new().key_in_order([("a", "1"), ("b", "2")], "j");
        assert_eq!(a, b);
        // The relabel order differs from sorted order, and so does the key.
        let c = KeyHasher::new().key_in_order([("b", "2"), ("a", "1")], "j");
        assert_ne!(a, c);
    }

    #[test]
    fn an_empty_value_is_no_label_but_still_a_name_that_may_not_repeat() {
        // Prometheus' label builder deletes empty labels (Builder.Reset), so the Go allocator
        // hashes {a="", b="1"} as {b="1"}; the parity vectors check the key values themselves.
        let key = |ls: &[(&str, &str)]| KeyHasher::new().key_of(ls.iter().copied(), "j");
        assert_eq!(key(&[("a", ""), ("b", "1")]), key(&[("b", "1")]));
        assert_eq!(key(&[("b", "1"), ("a", "")]), key(&[("b", "1")]));
        let b = LabelBuilder::new([("a", ""), ("b", "1")]).unwrap();
        assert_eq!(b.get("a"), None);
        assert_eq!(b.range().collect::<Vec<_>>(), [("b", "1")]);
        assert_eq!(b.target_key("j"), key(&[("b", "1")]).unwrap());
        // A name given twice is still refused, whichever copy is empty.
        for ls in [[("a", ""), ("a", "x")], [("a", "x"), ("a", "")]] {
            assert_eq!(key(&ls), Err(Error::DuplicateLabel("a".into())));
        }
        assert_eq!(
            key(&[("a", ""), ("a", "")]),
            Err(Error::DuplicateLabel("a".into()))
        );
    }

    #[test]
    fn node_follows_the_go_precedence() {
        let pod = "__meta_kubernetes_pod_node_name";
        let node = "__meta_kubernetes_node_name";
        let ep = "__meta_kubernetes_endpoint_node_name";
        let kind = "__meta_kubernetes_endpointslice_address_target_kind";
        let tname = "__meta_kubernetes_endpointslice_address_target_name";
        assert_eq!(node_of([(ep, "e"), (node, "n"), (pod, "p")]), Some("p"));
        assert_eq!(node_of([(ep, "e"), (node, "n"), (pod, "")]), Some("n"));
        assert_eq!(
            node_of([(ep, "e"), (kind, "Node"), (tname, "t")]),
            Some("e")
        );
        assert_eq!(node_of([(kind, "Node"), (tname, "t")]), Some("t"));
        assert_eq!(node_of([(kind, "Pod"), (tname, "t")]), None);
        assert_eq!(node_of([(kind, "Node"), (tname, "")]), None);
    }
}
