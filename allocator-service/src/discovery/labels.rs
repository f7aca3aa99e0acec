//! Discovered labels, stored compactly: a label set is one byte string (how many labels, where
//! each name and value ends, then names and values), sorted by name, and shared
//! (`Arc<LabelSet>`) by every target of its file_sd group, by the discovery cache that read it,
//! by the view that serves it and by the publisher that compares it. A `BTreeMap<String,
//! String>` per target cost a ~550-byte tree node plus two allocations per label; at a million
//! targets that was most of the memory.

use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// A label set sorted by name, each name once: `[n: u32][end of name 0, end of value 0, …:
/// u32 × 2n][names and values]`, the ends counted from the start of the text, little-endian.
/// One allocation rather than a string and a table of ends; a sized struct, so that the
/// `Arc<LabelSet>` every target, entry and table holds stays one word (a slice behind the `Arc`
/// would save the `Arc`'s own allocation but double every such pointer).
pub struct LabelSet {
    data: Box<[u8]>,
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

impl Eq for LabelSet {}

impl std::hash::Hash for LabelSet {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.data.hash(h)
    }
}

impl std::fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl LabelSet {
    /// From pairs in any order; a name given twice keeps its last value (as reading a JSON or
    /// YAML map into a `BTreeMap` did).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Arc<LabelSet> {
        let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        // Stable: equal names keep their input order, and the last of them wins below.
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut kept: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
        for p in pairs {
            match kept.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => kept.push(p),
            }
        }
        let text: usize = kept.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut data = Vec::with_capacity(4 + 8 * kept.len() + text);
        data.extend_from_slice(&offset(kept.len()).to_le_bytes());
        let mut end = 0;
        for (n, v) in &kept {
            end += n.len();
            data.extend_from_slice(&offset(end).to_le_bytes());
            end += v.len();
            data.extend_from_slice(&offset(end).to_le_bytes());
        }
        for (n, v) in &kept {
            data.extend_from_slice(n.as_bytes());
            data.extend_from_slice(v.as_bytes());
        }
        Arc::new(LabelSet {
            data: data.into_boxed_slice(),
        })
    }

    fn word(&self, i: usize) -> usize {
        let b = &self.data[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        (0..self.len()).map(move |i| self.pair(i))
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let text = 4 + 8 * self.len();
        let start = if i == 0 { 0 } else { self.word(2 * i) };
        let mid = self.word(2 * i + 1);
        let end = self.word(2 * i + 2);
        let s = |a: usize, b: usize| {
            // SAFETY: made by `new` from whole `str`s, which start and end at these offsets.
            unsafe { std::str::from_utf8_unchecked(&self.data[text + a..text + b]) }
        };
        (s(start, mid), s(mid, end))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (n, v) = self.pair(mid);
            match n.cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(v),
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.word(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held (for accounting; the `Arc`'s counts excepted).
    pub fn heap_bytes(&self) -> usize {
        self.data.len()
    }
}

/// Offsets are `u32`: a label set is part of one file (within the file size limit) or one
/// Kubernetes object (within the API server's object size limit), both far below 4 GiB.
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a label set is smaller than 4 GiB")
}

impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (n, v) in self.iter() {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

/// A map of strings to strings as read, in input order (duplicates kept; [`LabelSet::new`] keeps
/// the last, as reading into a `BTreeMap<String, String>` did), without building a tree.
#[derive(Default, Debug)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of label names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::with_capacity(m.size_hint().unwrap_or(4).min(64));
                while let Some(p) = m.next_entry::<String, String>()? {
                    pairs.push(p);
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

/// The labels a target is served with: its group's, with `__address__` in its sorted place.
#[derive(Clone)]
pub struct TargetLabels<'a> {
    group: &'a LabelSet,
    address: &'a str,
}

impl<'a> TargetLabels<'a> {
    pub fn new(group: &'a LabelSet, address: &'a str) -> Self {
        TargetLabels { group, address }
    }

    /// Sorted by name, `__address__` included (the group holds none of its own).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + 'a {
        let group: &'a LabelSet = self.group;
        let at = group
            .iter()
            .position(|(n, _)| n > ADDRESS)
            .unwrap_or(group.len());
        let address = self.address;
        group
            .iter()
            .take(at)
            .chain(std::iter::once((ADDRESS, address)))
            .chain(group.iter().skip(at))
    }
}

impl Serialize for TargetLabels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.group.len() + 1))?;
        for (n, v) in self.iter() {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

/// The label that holds a target's address.
pub const ADDRESS: &str = "__address__";

/// A label set without its `__address__` (which targets hold on their own), and that address.
pub fn split_address<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (Arc<LabelSet>, Option<Arc<str>>) {
    let mut address = None;
    let set = LabelSet::new(pairs.into_iter().filter(|(n, v)| {
        if *n == ADDRESS {
            address = Some(*v);
            false
        } else {
            true
        }
    }));
    (set, address.map(Arc::from))
}

/// The label sets and groups of a file's last contents: a re-read takes the allocations of
/// whatever did not change from here, so an unchanged group keeps its pointers (which the
/// publisher compares before anything else) and the identities relabeling found for it, and its
/// bytes are held once. (Addresses are not shared across groups: a group whose text changed
/// usually changed its address, and a table of every address cost more than it saved.)
#[derive(Default)]
pub struct Reuse {
    sets: std::collections::HashSet<Arc<LabelSet>, ahash::RandomState>,
    /// JSON: each group by the 128-bit hash of its text (an unchanged group is not parsed).
    pub(crate) groups:
        std::collections::HashMap<u128, Arc<crate::discovery::FileGroup>, ahash::RandomState>,
}

impl Reuse {
    /// `set`, as the shared allocation of the last contents when they held it; noted in `next`.
    pub fn set(&self, next: &mut Reuse, set: Arc<LabelSet>) -> Arc<LabelSet> {
        if let Some(a) = next.sets.get(&*set) {
            return a.clone();
        }
        let a = self.sets.get(&*set).cloned().unwrap_or(set);
        next.sets.insert(a.clone());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn read(json: &str) -> serde_json::Result<Arc<LabelSet>> {
        Ok(LabelSet::new(serde_json::from_str::<Pairs>(json)?.iter()))
    }

    #[test]
    fn a_label_set_reads_back_as_the_map_it_was_made_from() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("a", "")],
            &[("", "empty name")],
            &[("b", "2"), ("a", "1"), ("c", "3")],
            &[("x", "first"), ("y", "y"), ("x", "last")],
            &[("é", "ü"), ("Z", "z"), ("__meta_x", "\"q\" \\")],
        ];
        for pairs in cases {
            // A BTreeMap built by inserting in order is the reference (last duplicate wins).
            let want = map(pairs);
            let set = LabelSet::new(pairs.iter().copied());
            let got: BTreeMap<String, String> = set
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(got, want, "{pairs:?}");
            assert_eq!(set.len(), want.len());
            assert!(set.iter().map(|p| p.0).is_sorted_by(|a, b| a < b));
            for (n, v) in &want {
                assert_eq!(set.get(n), Some(v.as_str()), "{pairs:?} {n}");
            }
            assert_eq!(set.get("absent"), None);
            assert_eq!(
                serde_json::to_string(&*set).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
            let json = serde_json::to_string(&want).unwrap();
            assert_eq!(read(&json).unwrap(), set);
        }
        // Duplicates in the input text: the last wins, as a BTreeMap reads it.
        let dup = read(r#"{"a":"1","b":"2","a":"3"}"#).unwrap();
        let want: BTreeMap<String, String> =
            serde_json::from_str(r#"{"a":"1","b":"2","a":"3"}"#).unwrap();
        assert_eq!(dup.get("a"), Some(want["a"].as_str()));
        assert!(read(r#"{"a":1}"#).is_err());
        assert!(serde_yaml::from_str::<Pairs>("a: [1]").is_err());
    }

    #[test]
    fn served_labels_are_the_group_labels_with_the_address_in_order() {
        let groups: &[&[(&str, &str)]] = &[
            &[],
            &[("__meta_a", "1"), ("job", "x")],
            &[
                ("A", "upper first"),
                ("__", "u"),
                ("__a", "v"),
                ("__b", "w"),
            ],
            &[("__address__", "ignored"), ("z", "1")],
        ];
        for pairs in groups {
            let (set, own) = split_address(pairs.iter().copied());
            assert_eq!(own.is_some(), pairs.iter().any(|p| p.0 == ADDRESS));
            let served = TargetLabels::new(&set, "10.0.0.1:80");
            // The reference: the group's map with the address inserted (as discovery did).
            let mut want = map(pairs);
            want.insert(ADDRESS.into(), "10.0.0.1:80".into());
            let got: Vec<(String, String)> = served
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(
                got,
                want.clone().into_iter().collect::<Vec<_>>(),
                "{pairs:?}"
            );
            assert_eq!(
                serde_json::to_string(&served).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
        }
    }
}
