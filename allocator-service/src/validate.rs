//! Checks of a parsed configuration that Prometheus 3 (and the Go allocator) make and serde does
//! not: durations in Prometheus' grammar, relabel rules as Prometheus validates them (both
//! `relabel_configs` and `metric_relabel_configs`, which the collector will run, with the job's
//! name validation scheme), label names (Prometheus 3 takes any non-empty UTF-8 name), and
//! collector names. Kept apart from the
//! parsing in `config.rs`; `config::parse` calls [`config`].

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::File;
use crate::relabel::{NameScheme, Rule, RuleSpec};

/// A duration in Prometheus' grammar (`model.ParseDuration`), as [`crate::config::prom_duration_ms`]
/// parses it.
pub fn prom_duration(s: &str) -> Result<Duration, String> {
    crate::config::prom_duration_ms(s).map(Duration::from_millis)
}

/// Prometheus 3 label names (UTF-8 validation): any non-empty string.
pub fn label_name(name: &str) -> Result<(), String> {
    if NameScheme::Utf8.valid(name) {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid label name"))
    }
}

/// A relabel rule as Prometheus' `relabel.Config.Validate` checks it with the job's name
/// validation scheme, after compiling it as the allocator runs it.
pub fn rule(spec: &RuleSpec, scheme: NameScheme) -> Result<Rule, String> {
    let compiled = Rule::compile_for(spec, scheme)?;
    let action = spec
        .action
        .as_deref()
        .unwrap_or("replace")
        .to_ascii_lowercase();
    for l in &spec.source_labels {
        // Source names are `model.LabelName`s, which Prometheus 3 reads as UTF-8 whatever the
        // job's scheme.
        label_name(l).map_err(|e| format!("source_labels: {e}"))?;
    }
    if let Some(t) = spec.target_label.as_deref() {
        let valid = match action.as_str() {
            "replace" if t.contains('$') => scheme.valid_template(t),
            "replace" | "hashmod" | "lowercase" | "uppercase" | "keepequal" | "dropequal" => {
                scheme.valid(t)
            }
            _ => true,
        };
        if !valid {
            return Err(format!(
                "{t:?} is invalid 'target_label' for {action} action"
            ));
        }
    }
    let default_replacement = spec.replacement.as_deref().is_none_or(|r| r == "$1");
    if matches!(
        action.as_str(),
        "lowercase" | "uppercase" | "keepequal" | "dropequal"
    ) && !default_replacement
    {
        return Err(format!("'replacement' can not be set for {action} action"));
    }
    if action == "labelmap" {
        let replacement = spec.replacement.as_deref().unwrap_or("$1");
        if !scheme.valid_template(replacement) {
            return Err(format!(
                "{replacement:?} is invalid 'replacement' for labelmap action"
            ));
        }
    }
    if matches!(action.as_str(), "keepequal" | "dropequal")
        // Prometheus compares the regex by identity with its default: any written regex counts.
        && (spec.regex.is_some()
            || spec.modulus.is_some_and(|m| m != 0)
            || spec.separator.as_deref().is_some_and(|s| s != ";")
            || !default_replacement)
    {
        return Err(format!(
            "{action} action requires only 'source_labels' and 'target_label', and no other fields"
        ));
    }
    Ok(compiled)
}

/// Collector names: none empty, none twice (the allocator would refuse the whole list, and a
/// service that kept serving with no collectors would answer wrong while ready).
pub fn collector_names(names: &[String]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() {
            return Err(format!("collector {i} has an empty name"));
        }
        if !seen.insert(n.as_str()) {
            return Err(format!("collector {n:?} is listed twice"));
        }
    }
    Ok(())
}

/// Every check above over a parsed configuration file; errors name the key.
pub fn config(file: &File) -> Result<(), String> {
    collector_names(&file.collectors).map_err(|e| format!("collectors: {e}"))?;
    let g = &file.config.global;
    let global_interval = prom_duration(&g.scrape_interval)
        .map_err(|e| format!("config.global.scrape_interval: {e}"))?;
    let global_timeout = prom_duration(&g.scrape_timeout)
        .map_err(|e| format!("config.global.scrape_timeout: {e}"))?;
    if global_timeout > global_interval {
        return Err("config.global: scrape_timeout is greater than scrape_interval".into());
    }
    if let Some(e) = &g.evaluation_interval {
        prom_duration(e).map_err(|e| format!("config.global.evaluation_interval: {e}"))?;
    }
    for name in g.external_labels.keys() {
        label_name(name).map_err(|e| format!("config.global.external_labels: {e}"))?;
    }
    for (i, sc) in file.config.scrape_configs.iter().enumerate() {
        let at = format!("config.scrape_configs[{i}] (job {:?})", sc.job_name);
        let interval = match &sc.scrape_interval {
            Some(s) => prom_duration(s).map_err(|e| format!("{at}.scrape_interval: {e}"))?,
            None => global_interval,
        };
        if let Some(t) = &sc.scrape_timeout {
            let timeout = prom_duration(t).map_err(|e| format!("{at}.scrape_timeout: {e}"))?;
            if timeout > interval {
                return Err(format!(
                    "{at}: scrape_timeout {t:?} is greater than scrape_interval"
                ));
            }
        }
        for (k, fsd) in sc.file_sd_configs.iter().enumerate() {
            if let Some(r) = &fsd.refresh_interval {
                prom_duration(r)
                    .map_err(|e| format!("{at}.file_sd_configs[{k}].refresh_interval: {e}"))?;
            }
        }
        for (k, st) in sc.static_configs.iter().enumerate() {
            for name in st.labels.keys() {
                label_name(name).map_err(|e| format!("{at}.static_configs[{k}].labels: {e}"))?;
            }
        }
        let scheme = sc.name_scheme(g);
        for (key, rules) in [
            ("relabel_configs", &sc.relabel_configs),
            ("metric_relabel_configs", &sc.metric_relabel_configs),
        ] {
            for (r, spec) in rules.iter().enumerate() {
                rule(spec, scheme).map_err(|e| format!("{at}.{key}[{r}]: {e}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_prometheus_grammar() {
        // Accepted and refused as prometheus/common model.ParseDuration does.
        assert_eq!(prom_duration("0"), Ok(Duration::ZERO));
        assert_eq!(prom_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(prom_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(prom_duration("1m0s"), Ok(Duration::from_secs(60)));
        for bad in [
            "banana", "-5s", "5", "", "1.5s", "30s1m", "5s5s", " 5s", "5 s", "s",
        ] {
            assert!(prom_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn collector_names_refuse_empty_and_duplicates() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(collector_names(&v(&["c0", "c0", "c1"]))
            .unwrap_err()
            .contains("\"c0\" is listed twice"));
        assert!(collector_names(&v(&["c0", ""]))
            .unwrap_err()
            .contains("empty name"));
        assert_eq!(collector_names(&v(&["c0", "c1"])), Ok(()));
    }
}
