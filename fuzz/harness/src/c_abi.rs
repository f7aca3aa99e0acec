//! `c_abi`: the C ABI entry points driven by arbitrary arguments — config codes, batch lengths,
//! string bytes (invalid UTF-8 included), output capacities, snapshot bytes. Pointers are
//! always valid for the lengths passed (that is the caller's side of the contract); everything
//! else is arbitrary. Every call must return a documented code, never crash; the needed-size
//! protocol must hold.

use arbitrary::{Arbitrary, Unstructured};
use target_allocator::*;

#[derive(Arbitrary, Debug)]
enum Call {
    /// Rows (key, placement, job index, node index, weight) with job and node tables.
    Upsert(Vec<(u64, u64, u8, Option<u8>, u32)>, Vec<u8>, Vec<u8>, bool),
    /// Label sets as (job index, labels), encoded by the harness...
    UpsertLabeled(Vec<(u8, Vec<(u8, u8)>)>),
    /// ... or as arbitrary bytes split at arbitrary ends.
    UpsertRawLabels(Vec<u8>, Vec<u16>),
    Remove(Vec<u64>),
    Add(Vec<(u8, Option<u8>)>),
    RemoveCollectors(Vec<u8>),
    SetCollectors(Vec<(u8, Option<u8>)>),
    SetTargets(Vec<(u64, u64, u8)>),
    Read(Vec<u64>),
    Targets(u8, Option<u8>, u8),
    Snapshot(u8, bool),
    Restore(Vec<u8>),
    /// A node → zone table as (node, zone) string indexes (no zone: empty).
    NodeZones(Vec<(u8, Option<u8>)>),
}

#[derive(Arbitrary, Debug)]
struct Case {
    strategy: u32,
    fallback: u32,
    ring: u32,
    partitions: u16,
    replication: u8,
    load: f64,
    weighted: u8,
    epsilon: f64,
    max_weight: u16,
    zones: u8,
    zone_skew: f64,
    strings: Vec<Vec<u8>>,
    calls: Vec<Call>,
}

fn s(b: &[u8]) -> ta_str {
    ta_str {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

fn ok_code(rc: ta_result) {
    assert_ne!(
        rc,
        ta_result::TA_PANIC,
        "an internal error crossed the boundary"
    );
}

/// Drive the C ABI with arbitrary arguments (see the module docs).
pub fn c_abi(data: &[u8]) {
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let mut strings: Vec<Vec<u8>> = case.strings.into_iter().take(16).collect();
    strings.push(b"__address__".to_vec());
    strings.push(b"collector".to_vec());
    let pick = |i: u8| -> &[u8] { &strings[i as usize % strings.len()] };
    let collectors = |cs: &[(u8, Option<u8>)]| -> Vec<ta_collector> {
        cs.iter()
            .map(|&(n, node)| ta_collector {
                name: s(pick(n)),
                node: node.map_or(s(b""), |x| s(pick(x))),
            })
            .collect()
    };
    let config = ta_config {
        strategy: case.strategy % 5,
        fallback: if case.fallback % 3 == 2 {
            TA_STRATEGY_NONE
        } else {
            case.fallback % 4
        },
        ring_version: case.ring % 3,
        partition_count: u32::from(case.partitions % 2048),
        replication_factor: u32::from(case.replication % 8),
        load_factor: case.load,
        weighted: case.weighted % 3,
        epsilon: case.epsilon,
        // Another strategy refuses a cap; now and then one is asked for, to see the refusal.
        max_weight: if case.strategy % 5 == TA_STRATEGY_BOUNDED_HASHING || case.max_weight % 61 == 1
        {
            u64::from(case.max_weight)
        } else {
            0
        },
        zones: case.zones % 3,
        zone_skew: case.zone_skew,
    };
    let mut err: *mut ta_error = std::ptr::null_mut();
    // SAFETY: every pointer passed below points to live Rust data of the length given.
    unsafe {
        ok_code(ta_error_new(&mut err));
        let mut ta: *mut ta_allocator = std::ptr::null_mut();
        let rc = ta_allocator_new(&config, &mut ta, err);
        ok_code(rc);
        if rc != ta_result::TA_OK {
            assert!(ta.is_null());
            assert_eq!(ta_error_code(err), rc);
            ta_error_free(err);
            return;
        }
        let mut view: *mut ta_view = std::ptr::null_mut();
        ok_code(ta_view_new(&mut view));
        for call in case.calls.into_iter().take(32) {
            let mut diff: ta_diff = std::mem::zeroed();
            let mut changed = true;
            let rc = match call {
                Call::Upsert(rows, jobs, nodes, with_nodes) => {
                    let rows: Vec<_> = rows.into_iter().take(64).collect();
                    let keys: Vec<u64> = rows.iter().map(|r| r.0 % 64).collect();
                    let placements: Vec<u64> = rows.iter().map(|r| r.1).collect();
                    let weights: Vec<u32> = rows.iter().map(|r| r.4).collect();
                    // Indexes may point past the tables: the library must refuse them.
                    let job_idx: Vec<u32> = rows.iter().map(|r| u32::from(r.2 % 8)).collect();
                    let node_idx: Vec<u32> = rows
                        .iter()
                        .map(|r| r.3.map_or(TA_NO_NODE, |n| u32::from(n % 8)))
                        .collect();
                    let job_names: Vec<ta_str> = jobs.iter().take(8).map(|&j| s(pick(j))).collect();
                    let node_names: Vec<ta_str> =
                        nodes.iter().take(8).map(|&n| s(pick(n))).collect();
                    diff.upsert = ta_target_batch {
                        len: keys.len(),
                        keys: keys.as_ptr(),
                        placements: placements.as_ptr(),
                        weights: weights.as_ptr(),
                        jobs: job_idx.as_ptr(),
                        job_names: job_names.as_ptr(),
                        n_job_names: job_names.len(),
                        nodes: if with_nodes {
                            node_idx.as_ptr()
                        } else {
                            std::ptr::null()
                        },
                        node_names: node_names.as_ptr(),
                        n_node_names: node_names.len(),
                    };
                    ta_apply(ta, &diff, view, err)
                }
                Call::UpsertLabeled(sets) => {
                    let sets: Vec<_> = sets.into_iter().take(16).collect();
                    let job_names: Vec<ta_str> = strings.iter().map(|j| s(j)).collect();
                    let jobs: Vec<u32> = sets
                        .iter()
                        .map(|(j, _)| u32::from(*j) % job_names.len() as u32)
                        .collect();
                    let mut data = Vec::new();
                    let mut ends = Vec::new();
                    for (_, labels) in &sets {
                        for &(n, v) in labels.iter().take(8) {
                            encode(&mut data, pick(n));
                            encode(&mut data, pick(v));
                        }
                        ends.push(data.len() as u64);
                    }
                    let mut keys = vec![0u64; jobs.len()];
                    diff.upsert_labels = labels_batch(&data, &ends, &jobs, &job_names);
                    diff.upsert_labels.keys_out = keys.as_mut_ptr();
                    ta_apply(ta, &diff, view, err)
                }
                Call::UpsertRawLabels(data, cuts) => {
                    let ends: Vec<u64> = cuts
                        .iter()
                        .take(16)
                        .map(|&c| u64::from(c) % (data.len() as u64 + 2))
                        .collect();
                    let jobs = vec![0u32; ends.len()];
                    let job_names = [s(pick(0))];
                    diff.upsert_labels = labels_batch(&data, &ends, &jobs, &job_names);
                    ta_apply(ta, &diff, view, err)
                }
                Call::Remove(keys) => {
                    let keys: Vec<u64> = keys.iter().take(64).map(|k| k % 64).collect();
                    diff.remove = keys.as_ptr();
                    diff.n_remove = keys.len();
                    ta_apply(ta, &diff, view, err)
                }
                Call::Add(cs) | Call::SetCollectors(cs) if cs.len() > 40 => {
                    changed = false;
                    ta_result::TA_OK
                }
                Call::Add(cs) => {
                    let cs = collectors(&cs);
                    diff.add_collectors = cs.as_ptr();
                    diff.n_add_collectors = cs.len();
                    ta_apply(ta, &diff, view, err)
                }
                Call::SetCollectors(cs) => {
                    let cs = collectors(&cs);
                    ta_set_collectors(ta, cs.as_ptr(), cs.len(), view, err)
                }
                Call::NodeZones(rows) => {
                    let rows: Vec<ta_node_zone> = rows
                        .iter()
                        .take(16)
                        .map(|&(n, z)| ta_node_zone {
                            node: s(pick(n)),
                            zone: z.map_or(s(b""), |z| s(pick(z))),
                        })
                        .collect();
                    ta_set_node_zones(ta, rows.as_ptr(), rows.len(), view, err)
                }
                Call::RemoveCollectors(ns) => {
                    let ns: Vec<ta_str> = ns.iter().take(8).map(|&n| s(pick(n))).collect();
                    diff.remove_collectors = ns.as_ptr();
                    diff.n_remove_collectors = ns.len();
                    ta_apply(ta, &diff, view, err)
                }
                Call::SetTargets(rows) => {
                    let rows: Vec<_> = rows.into_iter().take(64).collect();
                    let keys: Vec<u64> = rows.iter().map(|r| r.0 % 64).collect();
                    let placements: Vec<u64> = rows.iter().map(|r| r.1).collect();
                    let jobs: Vec<u32> = rows.iter().map(|r| u32::from(r.2 % 2)).collect();
                    let job_names = [s(pick(0)), s(pick(1))];
                    let batch = ta_target_batch {
                        len: keys.len(),
                        keys: keys.as_ptr(),
                        placements: placements.as_ptr(),
                        weights: std::ptr::null(),
                        jobs: jobs.as_ptr(),
                        job_names: job_names.as_ptr(),
                        n_job_names: 2,
                        nodes: std::ptr::null(),
                        node_names: std::ptr::null(),
                        n_node_names: 0,
                    };
                    ta_set_targets(ta, &batch, std::ptr::null(), view, err)
                }
                Call::Read(keys) => {
                    changed = false;
                    let keys: Vec<u64> = keys.iter().take(64).map(|k| k % 64).collect();
                    let mut owners = vec![0u32; keys.len()];
                    let rc = ta_read(
                        ta,
                        keys.as_ptr(),
                        keys.len(),
                        owners.as_mut_ptr(),
                        view,
                        err,
                    );
                    if rc == ta_result::TA_OK {
                        let d = view_data(view);
                        assert_eq!(d.n_moves, 0);
                        assert_eq!(d.n_collectors as u64, d.summary.collectors);
                        let names = collector_names(&d);
                        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted by name");
                        let total: u64 = (0..d.n_collectors)
                            .map(|i| u64::from((*d.collectors.add(i)).targets))
                            .sum();
                        assert_eq!(total + d.summary.unassigned, d.summary.targets);
                        for &o in &owners {
                            assert!(o == TA_NO_COLLECTOR || (o as usize) < d.n_collectors);
                        }
                    }
                    rc
                }
                Call::Targets(c, job, cap) => {
                    changed = false;
                    let mut out = vec![0u64; cap as usize];
                    let mut needed = 0usize;
                    let job = job.map_or(s(b""), |j| s(pick(j)));
                    let rc = ta_collector_targets(
                        ta,
                        s(pick(c)),
                        job,
                        out.as_mut_ptr(),
                        out.len(),
                        &mut needed,
                        err,
                    );
                    assert!(rc != ta_result::TA_OK || needed <= out.len());
                    rc
                }
                Call::Snapshot(cap, restore) => {
                    changed = false;
                    let mut needed = 0usize;
                    let rc = ta_snapshot(ta, std::ptr::null_mut(), 0, &mut needed, err);
                    let mut buf = vec![0u8; needed.min(1 << 20) + cap as usize % 2];
                    let rc2 = ta_snapshot(ta, buf.as_mut_ptr(), buf.len(), &mut needed, err);
                    if rc2 == ta_result::TA_OK && restore {
                        let mut back: *mut ta_allocator = std::ptr::null_mut();
                        let r = ta_allocator_restore(buf.as_ptr(), needed, &mut back, err);
                        assert_eq!(r, ta_result::TA_OK, "a snapshot restores");
                        ta_allocator_free(back);
                    }
                    assert!(rc == ta_result::TA_BUFFER_TOO_SMALL || rc == ta_result::TA_OK);
                    // The error object describes the last call.
                    rc2
                }
                Call::Restore(bytes) => {
                    changed = false;
                    let mut back: *mut ta_allocator = std::ptr::null_mut();
                    let r = ta_allocator_restore(bytes.as_ptr(), bytes.len(), &mut back, err);
                    ta_allocator_free(back);
                    r
                }
            };
            if changed && rc == ta_result::TA_OK {
                // A change's view: each target moves once, sides index its collector table
                // and differ.
                let d = view_data(view);
                let mut keys = std::collections::HashSet::new();
                for i in 0..d.n_moves {
                    let m = *d.moves.add(i);
                    assert!(keys.insert(m.key), "a target moved twice in one change");
                    assert_ne!(m.from, m.to);
                    for side in [m.from, m.to] {
                        assert!(side == TA_NO_COLLECTOR || (side as usize) < d.n_collectors);
                    }
                }
            }
            ok_code(rc);
            if rc != ta_result::TA_OK {
                // A failure carries a message.
                let mut needed = 0usize;
                ok_code(ta_error_message(err, std::ptr::null_mut(), 0, &mut needed));
                assert!(needed > 1, "failure {rc:?} without a message");
                assert!(!ta_result_message(rc as u32).is_null());
            }
        }
        ta_view_free(view);
        ta_allocator_free(ta);
        ta_error_free(err);
    }
}

/// Append one string in the labels encoding.
fn encode(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 255 {
        out.push(s.len() as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&(s.len() as u32).to_le_bytes()[..3]);
    }
    out.extend_from_slice(s);
}

fn labels_batch(data: &[u8], ends: &[u64], jobs: &[u32], job_names: &[ta_str]) -> ta_label_batch {
    ta_label_batch {
        len: ends.len(),
        data: data.as_ptr(),
        data_len: data.len(),
        ends: ends.as_ptr(),
        jobs: jobs.as_ptr(),
        job_names: job_names.as_ptr(),
        n_job_names: job_names.len(),
        weights: std::ptr::null(),
        keys_out: std::ptr::null_mut(),
        threads: 0,
    }
}

/// # Safety
/// `view` is a live view.
unsafe fn view_data(view: *mut ta_view) -> ta_view_data {
    let mut d: ta_view_data = unsafe { std::mem::zeroed() };
    // SAFETY: per the contract.
    ok_code(unsafe { ta_view_get(view, &mut d, std::ptr::null_mut()) });
    d
}

/// # Safety
/// `d` describes a live view.
unsafe fn collector_names(d: &ta_view_data) -> Vec<Vec<u8>> {
    (0..d.n_collectors)
        .map(|i| {
            // SAFETY: the view holds `n_collectors` entries whose strings are valid.
            unsafe {
                let name = (*d.collectors.add(i)).name;
                std::slice::from_raw_parts(name.ptr, name.len).to_vec()
            }
        })
        .collect()
}
