//! Prometheus `relabel_configs`, applied where the Go allocator applies them: on a target's
//! discovered labels (with the scrape-layer labels seeded), before hashing. The label set is the
//! core's `LabelBuilder`, so the hash order matches the Go allocator's.

mod go_regex;

use allocator_core::LabelBuilder;
use md5::{Digest, Md5};
use regex::{Captures, Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Marks the error of a setting that Prometheus accepts but that this allocator cannot run with
/// the same meaning; such a configuration is refused (service README: relabel regexes).
pub const UNSUPPORTED: &str = "is not supported by this allocator";

/// A rule as written in the configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "modulus::deserialize"
    )]
    pub modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    action: Action,
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    /// Go's name of each capture group (index 0 the whole match, "" unnamed), for templates.
    names: Vec<String>,
    modulus: u64,
    target_label: String,
    replacement: String,
    /// The names a replace rule may write (Prometheus checks the expanded `target_label`).
    scheme: NameScheme,
}

/// How a job checks the label names its relabel rules write: Prometheus' per-job
/// `metric_name_validation_scheme` (else the global one; UTF-8 unless set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameScheme {
    /// Any non-empty UTF-8 name (Prometheus 3's default).
    #[default]
    Utf8,
    /// `[a-zA-Z_][a-zA-Z0-9_]*`, as before Prometheus 3.
    Legacy,
}

impl NameScheme {
    /// The scheme a job validates with: its own, else the global one. Values other than
    /// `legacy` and `utf8` are refused when the configuration loads (`scrape_defaults`), so
    /// they read as UTF-8 here.
    pub fn of_job(job: Option<&str>, global: Option<&str>) -> NameScheme {
        let written = job
            .filter(|s| !s.is_empty())
            .or(global.filter(|s| !s.is_empty()));
        match written {
            Some("legacy") => NameScheme::Legacy,
            _ => NameScheme::Utf8,
        }
    }

    /// `ValidationScheme.IsValidLabelName` of prometheus/common.
    pub fn valid(self, name: &str) -> bool {
        match self {
            // A Rust string is always UTF-8, which leaves emptiness as the only test.
            NameScheme::Utf8 => !name.is_empty(),
            NameScheme::Legacy => {
                !name.is_empty()
                    && name.bytes().enumerate().all(|(i, b)| {
                        b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit())
                    })
            }
        }
    }

    /// A name that may hold `$1` / `${name}` references (a replace rule's `target_label`
    /// with a `$`, a labelmap `replacement`): under legacy validation Prometheus checks it with
    /// its `relabelTargetLegacy` pattern (`\w` is ASCII in Go), under UTF-8 as a plain name.
    pub fn valid_template(self, name: &str) -> bool {
        static LEGACY_TEMPLATE: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(
                r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$",
            )
            .expect("a valid pattern")
        });
        match self {
            NameScheme::Utf8 => self.valid(name),
            NameScheme::Legacy => LEGACY_TEMPLATE.is_match(name),
        }
    }
}

impl Rule {
    /// Compile a rule with Prometheus' defaults for a job with UTF-8 name validation; errors
    /// name the field at fault.
    pub fn compile(spec: &RuleSpec) -> Result<Rule, String> {
        Rule::compile_for(spec, NameScheme::Utf8)
    }

    /// [`Rule::compile`] for a job whose `metric_name_validation_scheme` is `scheme`.
    pub fn compile_for(spec: &RuleSpec, scheme: NameScheme) -> Result<Rule, String> {
        let action = match spec
            .action
            .as_deref()
            .unwrap_or("replace")
            .to_ascii_lowercase()
            .as_str()
        {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            other => return Err(format!("unknown action {other:?}")),
        };
        let raw = spec.regex.as_deref().unwrap_or("(.*)");
        // Prometheus anchors every relabel regex at both ends, textually: a `)` in the rule can
        // close the anchoring group, so the whole text is what Go parses.
        let go = go_regex::translate(&format!("^(?s:{raw})$")).map_err(|p| match p {
            go_regex::Problem::Invalid(e) => format!("regex {raw:?}: {e}"),
            go_regex::Problem::Unsupported(e) => {
                format!("regex {raw:?}: {e} {UNSUPPORTED}, though Prometheus' Go regexp accepts it")
            }
        })?;
        let regex = RegexBuilder::new(&go.pattern)
            .nest_limit(4 * 400 + 16)
            .build()
            .map_err(|e| {
                format!("regex {raw:?}: {e} (as translated: {UNSUPPORTED}, though Prometheus' Go regexp accepts it)")
            })?;
        let target_label = spec.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::KeepEqual
                | Action::DropEqual
                | Action::Lowercase
                | Action::Uppercase
        );
        if needs_target && target_label.is_empty() {
            return Err(format!(
                "action {:?} needs a target_label",
                spec.action.as_deref().unwrap_or("replace")
            ));
        }
        let modulus = spec.modulus.unwrap_or(0);
        if action == Action::HashMod && modulus == 0 {
            return Err("hashmod needs a modulus above 0".into());
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!spec.source_labels.is_empty()
                || spec.target_label.as_deref().is_some_and(|t| !t.is_empty())
                || modulus != 0
                || spec.separator.as_deref().is_some_and(|s| s != ";")
                || spec.replacement.as_deref().is_some_and(|r| r != "$1"))
        {
            return Err(format!(
                "{} action requires only 'regex', and no other fields",
                if action == Action::LabelDrop {
                    "labeldrop"
                } else {
                    "labelkeep"
                }
            ));
        }
        Ok(Rule {
            action,
            source_labels: spec.source_labels.clone(),
            separator: spec.separator.clone().unwrap_or_else(|| ";".into()),
            regex,
            names: go.names,
            modulus,
            target_label,
            replacement: spec.replacement.clone().unwrap_or_else(|| "$1".into()),
            scheme,
        })
    }
}

/// Apply rules in order; false when the target is dropped. (A discovered label with an empty
/// value is already deleted in `b`, as Prometheus' `Builder.Reset` in the Go allocator deletes
/// it: see [`LabelBuilder::new`].)
pub fn apply(rules: &[Rule], b: &mut LabelBuilder) -> bool {
    for rule in rules {
        if !apply_one(rule, b) {
            return false;
        }
    }
    true
}

fn apply_one(r: &Rule, b: &mut LabelBuilder) -> bool {
    let value = r
        .source_labels
        .iter()
        .map(|n| b.get(n).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(&r.separator);
    match r.action {
        Action::Keep => return r.regex.is_match(&value),
        Action::Drop => return !r.regex.is_match(&value),
        Action::KeepEqual => return b.get(&r.target_label).unwrap_or("") == value,
        Action::DropEqual => return b.get(&r.target_label).unwrap_or("") != value,
        Action::Replace => {
            if let Some(caps) = r.regex.captures(&value) {
                let mut target = String::new();
                expand(&r.target_label, &caps, &r.names, &mut target);
                let mut out = String::new();
                expand(&r.replacement, &caps, &r.names, &mut out);
                if r.scheme.valid(&target) {
                    if out.is_empty() {
                        b.del(&target);
                    } else {
                        b.set(&target, &out);
                    }
                }
            }
        }
        Action::Lowercase => b.set(&r.target_label, &case::lower(&value)),
        Action::Uppercase => b.set(&r.target_label, &case::upper(&value)),
        Action::HashMod => {
            let sum = Md5::digest(value.as_bytes());
            let tail = u64::from_be_bytes(sum[8..16].try_into().expect("16-byte digest"));
            b.set(&r.target_label, &(tail % r.modulus).to_string());
        }
        Action::LabelMap => {
            let renamed: Vec<(String, String)> = b
                .range()
                .filter(|(n, _)| r.regex.is_match(n))
                .map(|(n, v)| (replace_all(r, n), v.to_owned()))
                .collect();
            for (n, v) in renamed {
                b.set(&n, &v);
            }
        }
        Action::LabelDrop | Action::LabelKeep => {
            let drop_if_match = r.action == Action::LabelDrop;
            let names: Vec<String> = b
                .range()
                .filter(|(n, _)| r.regex.is_match(n) == drop_if_match)
                .map(|(n, _)| n.to_owned())
                .collect();
            for n in names {
                b.del(&n);
            }
        }
    }
    true
}

/// Go's `Regexp.ReplaceAllString`: every match replaced by the expanded replacement. (The
/// anchored regex matches a name at most once, unless the rule's text reopens the anchoring.)
fn replace_all(r: &Rule, src: &str) -> String {
    let mut out = String::new();
    let mut last = 0;
    for caps in r.regex.captures_iter(src) {
        let m = caps.get(0).expect("group 0 of a match");
        out.push_str(&src[last..m.start()]);
        expand(&r.replacement, &caps, &r.names, &mut out);
        last = m.end();
    }
    out.push_str(&src[last..]);
    out
}

/// Go's `Regexp.ExpandString`: `$$` is `$`; `$name` / `${name}` where a name is letters,
/// digits (Unicode, as Go's `unicode.IsLetter`/`IsDigit`) and `_`; a name of ASCII digits
/// without a leading zero is a group number, any other name a group name (the first group of
/// that name that took part in the match); an unknown or unmatched group is empty; a malformed
/// reference leaves the `$` as text.
fn expand(template: &str, caps: &Captures<'_>, names: &[String], out: &mut String) {
    let mut t = template;
    while let Some(i) = t.find('$') {
        out.push_str(&t[..i]);
        t = &t[i + 1..];
        if let Some(rest) = t.strip_prefix('$') {
            out.push('$');
            t = rest;
            continue;
        }
        let Some((name, rest)) = template_ref(t) else {
            out.push('$');
            continue;
        };
        t = rest;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_str() == name)
                .find_map(|(i, _)| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(t);
}

/// The reference after a `$` (Go's `extract`): its name and the text after it.
fn template_ref(t: &str) -> Option<(&str, &str)> {
    let (body, brace) = match t.strip_prefix('{') {
        Some(b) => (b, true),
        None => (t, false),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(*c == '_' || case::is_letter_or_digit(*c)))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    if !brace {
        return Some((name, &body[end..]));
    }
    body[end..].strip_prefix('}').map(|rest| (name, rest))
}

/// Go's group number in a template: ASCII digits, no leading zero, below 10^8 (more digits
/// make it a name, which no group has).
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    let mut n: usize = 0;
    for b in name.bytes() {
        if n >= 100_000_000 {
            return None;
        }
        n = n * 10 + (b - b'0') as usize;
    }
    Some(n)
}

/// Go's case mappings (`strings.ToLower`/`ToUpper`): one character for one, by Unicode's
/// simple mappings, with no context (a final `Σ` stays `σ`) and no expansion (`ß` stays `ß`),
/// where Rust's `str::to_lowercase`/`to_uppercase` use the full, contextual mappings.
mod case {
    use std::sync::LazyLock;

    use regex::Regex;

    pub fn lower(s: &str) -> String {
        s.chars()
            .map(|c| {
                let mut m = c.to_lowercase();
                match (m.next(), m.next()) {
                    (Some(l), None) => l,
                    // Only U+0130 (İ) lowercases to more than one character; its simple
                    // mapping is the first of them, `i`.
                    (Some(l), Some(_)) => l,
                    _ => c,
                }
            })
            .collect()
    }

    pub fn upper(s: &str) -> String {
        s.chars()
            .map(|c| {
                let mut m = c.to_uppercase();
                match (m.next(), m.next()) {
                    (Some(u), None) => u,
                    // Expanding mappings (ß → SS, ﬀ → FF) have no simple one, except the Greek
                    // letters with ypogegrammeni, whose simple uppercase is the titlecase letter
                    // 8 or 9 code points on, the one that lowercases back to them.
                    _ => [8, 9]
                        .into_iter()
                        .filter_map(|d| char::from_u32(c as u32 + d))
                        .find(|t| {
                            let mut l = t.to_lowercase();
                            l.next() == Some(c) && l.next().is_none()
                        })
                        .unwrap_or(c),
                }
            })
            .collect()
    }

    /// Go's `unicode.IsLetter(c) || unicode.IsDigit(c)`: general categories L* and Nd.
    pub fn is_letter_or_digit(c: char) -> bool {
        static WORD: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\A[\p{L}\p{Nd}]\z").expect("a valid class"));
        if c.is_ascii() {
            return c.is_ascii_alphanumeric();
        }
        let mut buf = [0; 4];
        WORD.is_match(c.encode_utf8(&mut buf))
    }
}

/// A modulus as yaml.v2 decodes a YAML value into a `uint64`: an integer in range, or a float
/// (Go truncates it toward zero); anything else, and the floats whose conversion Go leaves to the
/// platform (negative, or at least 2^64), is refused.
mod modulus {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Modulus)
    }

    struct Modulus;

    fn float<E: de::Error>(f: f64) -> Result<Option<u64>, E> {
        const TWO_64: f64 = 18_446_744_073_709_551_616.0;
        if f.is_nan() || f <= -1.0 || f >= TWO_64 {
            return Err(E::custom(format!(
                "modulus {f} is outside 0..2^64, where Go's conversion depends on the platform: {}",
                super::UNSUPPORTED
            )));
        }
        Ok(Some(f.trunc() as u64))
    }

    impl<'de> Visitor<'de> for Modulus {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned integer")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Modulus)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("cannot unmarshal {v} into uint64")))
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
            // yaml.v2 reads an integer past 2^64 as a float.
            float(v as f64)
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
            float(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            float(v)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            // The scalars as the configuration loader's YAML 1.1 pass resolves them (see
            // `config::yaml11`): integers in Go's spellings, floats in Go's format.
            if let Ok(v) = s.parse::<u64>() {
                return Ok(Some(v));
            }
            if let Some(i) = crate::config::yaml11::int_word(s) {
                return self.visit_i64(i);
            }
            match s.replace('_', "").parse::<f64>() {
                Ok(f) if s.bytes().any(|b| b.is_ascii_digit()) => float(f),
                _ => Err(E::custom(format!("cannot unmarshal {s:?} into uint64"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        Rule::compile(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn any_regex_text_compiles_or_is_refused_and_never_panics() {
        // The Go grammar is restated by hand (go_regex.rs): random texts of its metacharacters
        // must each give a rule or an error, and a rule must run.
        const PIECES: &[&str] = &[
            "(", ")", "[", "]", "{", "}", "*", "+", "?", "|", "\\", "^", "$", ".", "-", ",", ":",
            "=", "<", ">", "!", "P", "Q", "E", "p", "x", "d", "w", "a", "1", "0", "7", "(?",
            "(?P<", "(?i)", "[:", ":]", "\\p{", "\\x{", "\\Q", "\\E", "{2,", "é", " ",
        ];
        let mut rng = crate::test_rng::Rng(0x5eed_1234);
        for _ in 0..20_000 {
            let text: String = (0..1 + rng.below(10))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect();
            let spec = RuleSpec {
                regex: Some(text.clone()),
                replacement: Some("$1${1}x$$".into()),
                target_label: Some("out".into()),
                source_labels: vec!["a".into()],
                ..RuleSpec::default()
            };
            let result = std::panic::catch_unwind(|| {
                if let Ok(r) = Rule::compile(&spec) {
                    let mut b = LabelBuilder::new([("a", "x(é1]")]).unwrap();
                    apply(&[r], &mut b);
                }
            });
            assert!(result.is_ok(), "regex {text:?} panicked");
        }
    }

    fn run(rules: &[&str], labels: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        let rules: Vec<Rule> = rules.iter().map(|y| rule(y)).collect();
        let mut b = LabelBuilder::new(labels.iter().copied()).unwrap();
        apply(&rules, &mut b).then(|| {
            let mut l = b.labels();
            l.sort();
            l
        })
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replace_uses_anchored_regex_captures_and_deletes_on_empty() {
        let base = [("__address__", "10.0.0.1:9100"), ("app", "api")];
        let out = run(
            &["{source_labels: [__address__], regex: '(.+):(\\d+)', target_label: host, replacement: '${1}'}"],
            &base,
        );
        assert_eq!(
            out,
            Some(l(&[
                ("__address__", "10.0.0.1:9100"),
                ("app", "api"),
                ("host", "10.0.0.1")
            ]))
        );
        // Anchored: "pi" does not match "api".
        let out = run(
            &["{source_labels: [app], regex: pi, target_label: x, replacement: y}"],
            &base,
        );
        assert_eq!(out, Some(l(&base)));
        let out = run(
            &["{source_labels: [app], regex: api, target_label: app, replacement: ''}"],
            &base,
        );
        assert_eq!(out, Some(l(&[("__address__", "10.0.0.1:9100")])));
    }

    #[test]
    fn keep_drop_and_their_equal_forms() {
        let base = [("__address__", "a:1"), ("x", "1"), ("y", "1"), ("z", "2")];
        assert!(run(&["{source_labels: [x], regex: '1', action: keep}"], &base).is_some());
        assert!(run(&["{source_labels: [x], regex: '2', action: keep}"], &base).is_none());
        assert!(run(&["{source_labels: [x], regex: '1', action: drop}"], &base).is_none());
        assert!(run(
            &["{source_labels: [x], target_label: y, action: keepequal}"],
            &base
        )
        .is_some());
        assert!(run(
            &["{source_labels: [x], target_label: z, action: keepequal}"],
            &base
        )
        .is_none());
        assert!(run(
            &["{source_labels: [x], target_label: y, action: dropequal}"],
            &base
        )
        .is_none());
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus takes the last 8 bytes of the MD5 digest, big-endian, modulo `modulus`.
        // Checked on the published digest of the empty string:
        // md5("") = d41d8cd98f00b204e9800998ecf8427e, so the tail is 0xe9800998ecf8427e.
        let out = run(
            &["{source_labels: [nothing], modulus: 1000, target_label: shard, action: hashmod}"],
            &[("a", "b")],
        );
        let expected = 0xe980_0998_ecf8_427e_u64 % 1000;
        assert_eq!(
            out.unwrap().iter().find(|(n, _)| n == "shard").unwrap().1,
            expected.to_string()
        );
    }

    #[test]
    fn labelmap_labeldrop_labelkeep_lowercase_uppercase() {
        let base = [
            ("__meta_kubernetes_pod_label_app", "API"),
            ("__address__", "a:1"),
            ("tmp_x", "1"),
        ];
        let out = run(
            &["{regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}"],
            &base,
        )
        .unwrap();
        assert!(out.contains(&("app".into(), "API".into())));
        let out = run(&["{regex: 'tmp_.*', action: labeldrop}"], &base).unwrap();
        assert!(!out.iter().any(|(n, _)| n == "tmp_x"));
        let out = run(&["{regex: '__.*', action: labelkeep}"], &base).unwrap();
        assert_eq!(out.len(), 2);
        let out = run(&["{source_labels: [__meta_kubernetes_pod_label_app], target_label: lo, action: lowercase}"], &base).unwrap();
        assert!(out.contains(&("lo".into(), "api".into())));
        let out = run(&["{source_labels: [tmp_x, __address__], separator: '-', target_label: up, action: uppercase}"], &base).unwrap();
        assert!(out.contains(&("up".into(), "1-A:1".into())));
    }

    #[test]
    fn bad_rules_are_errors_naming_the_problem() {
        let e = Rule::compile(&serde_yaml::from_str("{regex: '(', action: keep}").unwrap())
            .unwrap_err();
        assert!(e.contains("regex"), "{e}");
        let e = Rule::compile(&serde_yaml::from_str("{action: explode}").unwrap()).unwrap_err();
        assert!(e.contains("explode"), "{e}");
        let e = Rule::compile(&serde_yaml::from_str("{action: hashmod, target_label: s}").unwrap())
            .unwrap_err();
        assert!(e.contains("modulus"), "{e}");
    }

    // The answers below are Prometheus' own: model/relabel at v0.312.0 run on these rules and
    // labels the way testdata/relabel-gen runs it (yaml.v2 into promconfig.Config, then
    // relabel.ProcessBuilder); the cases it found are in its vectors.

    fn keeps(regex: &str, value: &str) -> bool {
        let r = format!(
            "{{source_labels: [x], regex: {}, action: keep}}",
            serde_json::to_string(regex).unwrap()
        );
        run(&[&r], &[("x", value)]).is_some()
    }

    fn refused(yaml: &str) -> String {
        Rule::compile(&serde_yaml::from_str(yaml).unwrap()).unwrap_err()
    }

    #[test]
    fn perl_classes_and_word_boundaries_are_ascii_as_in_go() {
        assert!(!keeps(r"\d+", "१२३"));
        assert!(!keeps(r"\w", "é"));
        assert!(!keeps(r"\s", "\u{a0}"));
        assert!(!keeps(r"\s", "\u{b}"));
        assert!(keeps(r".\b.", "éa"));
    }

    #[test]
    fn go_syntax_rust_reads_otherwise_or_refuses_means_what_go_means() {
        assert!(keeps("[a&&b]", "&"));
        assert!(keeps(r"\<", "<"));
        assert!(keeps("x{", "x{"));
        assert!(keeps(r"\Q.*\E", ".*"));
        assert!(keeps(r"\101", "A"));
        assert!(keeps(r"\p{^Greek}+", "ab"));
        let out = run(
            &["{source_labels: [x], regex: '(?P<1a>.*)', target_label: y, replacement: '${1a}'}"],
            &[("x", "v")],
        );
        assert_eq!(out, Some(l(&[("x", "v"), ("y", "v")])));
        let out = run(
            &["{source_labels: [x], regex: '(?P<a>x)|(?P<a>y)', target_label: y, replacement: '<$a>'}"],
            &[("x", "y")],
        );
        assert_eq!(out, Some(l(&[("x", "y"), ("y", "<y>")])));
    }

    #[test]
    fn syntax_go_refuses_is_refused() {
        for re in [
            "a**",
            "(?x)a b",
            "[a--b]",
            r"\u0041",
            "a{1001}",
            "(?P<a.b>x)",
            r"\p{Alphabetic}",
            "(a{100}){11}",
        ] {
            let yaml = format!(
                "{{source_labels: [x], regex: {}, action: keep}}",
                serde_json::to_string(re).unwrap()
            );
            let e = refused(&yaml);
            assert!(e.contains("error parsing regexp"), "{re}: {e}");
        }
    }

    #[test]
    fn templates_expand_as_go_expands_them() {
        let out = run(
            &["{source_labels: [x], regex: '(.*)', target_label: y, replacement: '$01|${a-b}|$1é|${1}é|$$1'}"],
            &[("x", "v")],
        );
        assert_eq!(out, Some(l(&[("x", "v"), ("y", "|${a-b}||vé|$1")])));
    }

    #[test]
    fn case_actions_map_one_character_to_one_as_go() {
        let out = run(
            &["{source_labels: [x], target_label: y, action: uppercase}"],
            &[("x", "ßﬀᾀ")],
        );
        assert_eq!(out, Some(l(&[("x", "ßﬀᾀ"), ("y", "ßﬀᾈ")])));
        let out = run(
            &["{source_labels: [x], target_label: y, action: lowercase}"],
            &[("x", "ΑΣ İ")],
        );
        assert_eq!(out, Some(l(&[("x", "ΑΣ İ"), ("y", "ασ i")])));
    }

    #[test]
    fn labeldrop_takes_only_a_regex_and_modulus_reads_as_yaml_v2() {
        let e = refused("{regex: 'x', separator: ',', action: labeldrop}");
        assert!(e.contains("requires only 'regex'"), "{e}");
        let out = run(
            &["{source_labels: [x], target_label: y, modulus: 1e3, action: hashmod}"],
            &[("x", "1")],
        );
        assert_eq!(out, Some(l(&[("x", "1"), ("y", "291")])));
        let out = run(
            &["{source_labels: [x], target_label: y, modulus: 2.9, action: hashmod}"],
            &[("x", "1")],
        );
        assert_eq!(out, Some(l(&[("x", "1"), ("y", "1")])));
        let e = serde_yaml::from_str::<RuleSpec>("{modulus: 18446744073709551616}").unwrap_err();
        assert!(e.to_string().contains(UNSUPPORTED), "{e}");
    }

    #[test]
    fn discovered_labels_with_empty_values_count_as_deleted() {
        // Prometheus: labelmap `(.*)` → `m_$1` over {x="", y="1"} gives {m_y="1", y="1"}.
        let out = run(
            &["{regex: '(.*)', replacement: 'm_$1', action: labelmap}"],
            &[("x", ""), ("y", "1")],
        );
        assert_eq!(out, Some(l(&[("m_y", "1"), ("y", "1")])));
        let rules = [rule("{regex: 'none', action: labeldrop}")];
        let mut b = LabelBuilder::new([("__meta_k", ""), ("a", "1"), ("z", "")]).unwrap();
        b.set("z", "seeded");
        assert!(apply(&rules, &mut b));
        let order: Vec<_> = b.range().collect();
        assert_eq!(order, [("a", "1"), ("z", "seeded")]);
    }
}
