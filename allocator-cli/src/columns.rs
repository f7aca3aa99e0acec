//! The `targets` array of the input, read straight into the core's columns: each target's labels
//! are hashed as soon as its object ends and then dropped (borrowed from the input where they
//! need no unescaping), so memory holds 28 bytes a target instead of every label as a `String`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use allocator_core::{KeyHasher, TargetBatch, TargetSpec, NO_NODE};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Every target as columns, with the job and node names interned.
#[derive(Default)]
pub struct Targets {
    pub keys: Vec<u64>,
    pub placements: Vec<u64>,
    pub weights: Vec<u32>,
    pub jobs: Vec<u32>,
    pub nodes: Vec<u32>,
    pub job_names: Vec<String>,
    pub node_names: Vec<String>,
    /// The first target the core refused, as the message to print (later ones are not hashed).
    pub error: Option<String>,
}

impl Targets {
    /// The columns as the core's batch; `names` holds the borrowed name tables.
    pub fn batch<'a>(&'a self, names: &'a (Vec<&'a str>, Vec<&'a str>)) -> TargetBatch<'a> {
        TargetBatch {
            keys: &self.keys,
            placements: &self.placements,
            weights: &self.weights,
            jobs: &self.jobs,
            job_names: &names.0,
            // No column at all when no target has a node.
            nodes: if self.node_names.is_empty() {
                &[]
            } else {
                &self.nodes
            },
            node_names: &names.1,
        }
    }

    pub fn names(&self) -> (Vec<&str>, Vec<&str>) {
        (
            self.job_names.iter().map(String::as_str).collect(),
            self.node_names.iter().map(String::as_str).collect(),
        )
    }
}

/// A string borrowed from the input when it has no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Labels in document order, duplicates kept so the core can name them (a map would silently
/// keep the last value).
struct Labels<'de>(Vec<(Str<'de>, Str<'de>)>);

impl<'de> Deserialize<'de> for Labels<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of label names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(e) = map.next_entry::<Str<'de>, Str<'de>>()? {
                    out.push(e);
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One target object: `job`, `labels`, optional `weight`; nothing else.
struct Target<'de> {
    job: Str<'de>,
    labels: Labels<'de>,
    weight: u32,
}

const FIELDS: &[&str] = &["job", "labels", "weight"];

impl<'de> Deserialize<'de> for Target<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Target<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target<'de>, A::Error> {
                let (mut job, mut labels, mut weight) = (None, None, None);
                while let Some(k) = map.next_key::<Str<'de>>()? {
                    match k.0.as_ref() {
                        "job" if job.is_none() => job = Some(map.next_value()?),
                        "labels" if labels.is_none() => labels = Some(map.next_value()?),
                        "weight" if weight.is_none() => weight = Some(map.next_value()?),
                        f @ ("job" | "labels" | "weight") => {
                            return Err(de::Error::duplicate_field(match f {
                                "job" => "job",
                                "labels" => "labels",
                                _ => "weight",
                            }))
                        }
                        other => return Err(de::Error::unknown_field(other, FIELDS)),
                    }
                }
                Ok(Target {
                    job: job.ok_or_else(|| de::Error::missing_field("job"))?,
                    labels: labels.ok_or_else(|| de::Error::missing_field("labels"))?,
                    weight: weight.unwrap_or(1),
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Targets;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of targets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Targets, A::Error> {
                let mut t = Targets::default();
                let mut hasher = KeyHasher::new();
                let mut job_ids: HashMap<String, u32> = HashMap::new();
                let mut node_ids: HashMap<String, u32> = HashMap::new();
                // The same target twice is one target; with two different weights or nodes,
                // which one counts would be a silent choice, so it is an error naming both
                // entries.
                let mut first: HashMap<u64, u32> = HashMap::new();
                let mut i = 0usize;
                loop {
                    if t.error.is_some() {
                        // Read the rest for syntax errors only.
                        if seq.next_element::<IgnoredAny>()?.is_none() {
                            break;
                        }
                        continue;
                    }
                    let Some(target) = seq.next_element::<Target<'de>>()? else {
                        break;
                    };
                    let job = target.job.0.as_ref();
                    let labels = target
                        .labels
                        .0
                        .iter()
                        .map(|(n, v)| (n.0.as_ref(), v.0.as_ref()));
                    let spec = match TargetSpec::from_labels_with(&mut hasher, labels, job) {
                        Ok(s) => s,
                        Err(e) => {
                            t.error = Some(format!("targets[{i}] (job {job:?}): {e}"));
                            continue;
                        }
                    };
                    let row = t.keys.len() as u32;
                    if let Some(&j) = first.get(&spec.key.0) {
                        let w = t.weights[j as usize];
                        if w != target.weight {
                            t.error = Some(format!(
                                "targets[{i}] (job {job:?}) is the same target as targets[{j}] with a different weight ({} vs {w})",
                                target.weight
                            ));
                            continue;
                        }
                        // The node comes from `__meta_*` labels, which the identity leaves out.
                        let node = t.node_names.get(t.nodes[j as usize] as usize);
                        if node.map(String::as_str) != spec.node {
                            t.error = Some(format!(
                                "targets[{i}] (job {job:?}) is the same target as targets[{j}] on a different node ({:?} vs {:?})",
                                spec.node, node
                            ));
                            continue;
                        }
                    } else {
                        first.insert(spec.key.0, row);
                    }
                    let intern =
                        |ids: &mut HashMap<String, u32>, names: &mut Vec<String>, s: &str| {
                            if let Some(&id) = ids.get(s) {
                                return id;
                            }
                            names.push(s.to_owned());
                            let id = names.len() as u32 - 1;
                            ids.insert(s.to_owned(), id);
                            id
                        };
                    t.keys.push(spec.key.0);
                    t.placements.push(spec.placement.0);
                    t.weights.push(target.weight);
                    t.jobs.push(intern(&mut job_ids, &mut t.job_names, job));
                    t.nodes.push(match spec.node {
                        Some(n) => intern(&mut node_ids, &mut t.node_names, n),
                        None => NO_NODE,
                    });
                    i += 1;
                }
                Ok(t)
            }
        }
        d.deserialize_seq(V)
    }
}
