use std::collections::BTreeMap;

use super::*;
use crate::discovery::Target;

#[test]
fn counts_are_quantized_to_powers_of_the_fourth_root_of_two() {
    // Computed with Python: round(2 ** (round(4 * log2(s)) / 4)), at least 1, at most 2^32 - 1.
    for (series, weight) in [
        (0.0, 1),
        (0.5, 1),
        (1.0, 1),
        (1.1, 1),
        (2.0, 2),
        (3.0, 3),
        (100.0, 108),
        (1000.0, 1024),
        (123456.0, 131072),
        (1e12, u32::MAX),
    ] {
        assert_eq!(quantize(series), weight, "{series}");
    }
}

#[test]
fn pushes_are_read_and_bad_ones_named() {
    let ok = parse_push(
        br#"[{"job":"a","address":"h:1","series":10},
             {"job":"a","instance":"h:2","series":0,"collector":"c1"}]"#,
    )
    .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].address, "h:2");
    assert_eq!(ok[1].collector.as_deref(), Some("c1"));
    for (body, names) in [
        (&b"{}"[..], "expected a JSON array"),
        (b"[", "not JSON"),
        (br#"[{"job":"a","series":1}]"#, "[0]: missing address"),
        (
            br#"[{"job":"a","address":"x","instance":"x","series":1}]"#,
            "not both",
        ),
        (
            br#"[{"job":"a","address":"x","series":1},{"job":"a","address":"x","series":-1}]"#,
            "[1]: series must be a finite number",
        ),
        (
            br#"[{"job":"a","address":"x","series":"9"}]"#,
            "[0]: invalid type",
        ),
        (br#"[{"job":"a","address":"x"}]"#, "missing field `series`"),
        (
            br#"[{"job":"a","address":"x","series":1,"serie":2}]"#,
            "unknown field `serie`",
        ),
        (
            br#"[{"job":"","address":"x","series":1}]"#,
            "must not be empty",
        ),
    ] {
        let e = parse_push(body).unwrap_err();
        assert!(e.contains(names), "{}: {e}", String::from_utf8_lossy(body));
    }
}

#[test]
fn query_answers_are_read_as_prometheus_writes_them() {
    // The shape of Prometheus' /api/v1/query answer for an instant vector.
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"scrape_samples_scraped","job":"a","instance":"h:1","collector":"c0"},"value":[1700000000.123,"250"]},
        {"metric":{"__name__":"scrape_samples_scraped","job":"a"},"value":[1700000000.123,"5"]},
        {"metric":{"job":"b","instance":"h:2"},"value":[1700000000.123,"NaN"]},
        {"metric":{"job":"b","instance":"h:3"},"value":[1700000000.123,"7"]}]}}"#;
    let obs = parse_query(body, Some("collector")).unwrap();
    assert_eq!(
        obs,
        vec![
            Observation {
                job: "a".into(),
                address: "h:1".into(),
                series: 250.0,
                collector: Some("c0".into())
            },
            Observation {
                job: "b".into(),
                address: "h:3".into(),
                series: 7.0,
                collector: None
            },
        ]
    );
    let e = parse_query(
        br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        None,
    )
    .unwrap_err();
    assert!(e.contains("bad_data parse error"), "{e}");
    let e = parse_query(
        br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        None,
    )
    .unwrap_err();
    assert!(e.contains("expected a vector"), "{e}");
}

fn target(job: &str, address: &str) -> Target {
    let mut labels = BTreeMap::new();
    labels.insert("__address__".to_owned(), address.to_owned());
    Target::unrelabeled(&labels, job).unwrap()
}

fn obs(address: &str, series: f64) -> Vec<Observation> {
    vec![Observation {
        job: "a".into(),
        address: address.into(),
        series,
        collector: None,
    }]
}

fn weights() -> (Weights, Vec<Target>) {
    let w = Weights::new(&Settings {
        push: true,
        pull: None,
        band: 0.25,
        consecutive: 3,
    });
    let ts = vec![target("a", "h:1"), target("a", "h:2")];
    (w, ts)
}

#[test]
fn noise_within_the_band_changes_no_weight() {
    let (mut w, ts) = weights();
    w.index(ts.iter());
    let k = ts[0].key;
    assert!(
        w.observe(obs("h:1", 1000.0), |_, _| ()),
        "first: set at once"
    );
    assert_eq!(w.weight(k), 1024);
    // ±20% around 1000 for a long time: within ±25% of 1024 after quantization.
    for (i, s) in [1200.0, 800.0, 1150.0, 850.0, 1190.0, 810.0]
        .iter()
        .cycle()
        .take(60)
        .enumerate()
    {
        assert!(
            !w.observe(obs("h:1", *s), |_, _| ()),
            "observation {i}: {s}"
        );
    }
    assert_eq!(w.weight(k), 1024);
    assert_eq!(w.totals().weight_changes, 1);
}

#[test]
fn a_weight_changes_after_k_observations_outside_the_band_in_a_row() {
    let (mut w, ts) = weights();
    w.index(ts.iter());
    let k = ts[0].key;
    w.observe(obs("h:1", 1000.0), |_, _| ());
    // Two out, one back in: the run restarts.
    assert!(!w.observe(obs("h:1", 4000.0), |_, _| ()));
    assert!(!w.observe(obs("h:1", 4000.0), |_, _| ()));
    assert!(!w.observe(obs("h:1", 1000.0), |_, _| ()));
    assert!(!w.observe(obs("h:1", 4000.0), |_, _| ()));
    assert!(!w.observe(obs("h:1", 3000.0), |_, _| ()));
    assert_eq!(w.weight(k), 1024);
    // Third in a row: the latest value is taken.
    assert!(w.observe(obs("h:1", 4000.0), |_, _| ()));
    assert_eq!(w.weight(k), 4096);
    // The other target was never observed.
    assert_eq!(w.weight(ts[1].key), 1);
}

/// A target repeated in one push (or seen once per collector in one pull) counts once, with
/// its last value: three copies in one batch are not three observations in a row.
#[test]
fn a_target_counts_once_per_push_or_pull() {
    let (mut w, ts) = weights();
    w.index(ts.iter());
    let k = ts[0].key;
    w.observe(obs("h:1", 1000.0), |_, _| ());
    let mut three = obs("h:1", 4000.0);
    three.extend(obs("h:1", 4000.0));
    three.extend(obs("h:1", 4000.0));
    let mut seen = 0;
    assert!(!w.observe(three.clone(), |_, _| seen += 1));
    assert_eq!(w.weight(k), 1024);
    // Each observation still reports its collector (none here) and counts as matched.
    assert_eq!(seen, 0);
    assert_eq!(w.totals().matched, 4);
    // Two more batches: the third in a row changes it, to the batch's last value.
    assert!(!w.observe(three.clone(), |_, _| ()));
    let mut last = obs("h:1", 4000.0);
    last.extend(obs("h:1", 8000.0));
    assert!(w.observe(last, |_, _| ()));
    assert_eq!(w.weight(k), 8192);
}

#[test]
fn unknown_targets_are_counted_and_ignored_and_unlisted_ones_forgotten() {
    let (mut w, ts) = weights();
    w.index(ts.iter());
    let mut seen = Vec::new();
    let mut o = obs("h:9", 50.0);
    o.extend(obs("h:2", 50.0));
    o[1].collector = Some("c1".into());
    assert!(w.observe(o, |k, c| seen.push((k, c.to_owned()))));
    assert_eq!(seen, vec![(ts[1].key, "c1".to_owned())]);
    assert_eq!(
        w.totals(),
        Totals {
            matched: 1,
            unknown: 1,
            weight_changes: 1
        }
    );
    assert_eq!(w.weight(ts[1].key), 54);
    // h:2 leaves the listing: its weight is forgotten.
    w.index(ts[..1].iter());
    assert_eq!(w.weight(ts[1].key), 1);
    assert!(!w.observe(obs("h:2", 50.0), |_, _| ()));
    assert_eq!(w.totals().unknown, 2);
}
