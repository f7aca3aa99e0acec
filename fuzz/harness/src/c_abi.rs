//! `c_abi`: the C ABI entry points driven by arbitrary arguments — config codes, batch lengths,
//! string bytes (invalid UTF-8 included), output capacities, snapshot bytes. Pointers are
//! always valid for the lengths passed (that is the caller's side of the contract); everything
//! else is arbitrary. Every call must return a documented code, never crash; the needed-size
//! protocol must hold.

use arbitrary::{Arbitrary, Unstructured};
use target_allocator::*;

#[derive(Arbitrary, Debug)]
enum Call {
    Upsert(Vec<(u64, u64, u8, Option<u8>, u32)>),
    UpsertLabeled(Vec<(u8, Vec<(u8, u8)>)>),
    Remove(Vec<u64>),
    Add(Vec<(u8, Option<u8>)>),
    RemoveCollectors(Vec<u8>),
    SetCollectors(Vec<(u8, Option<u8>)>),
    Lookup(Vec<u64>),
    Targets(u8, Option<u8>, u8),
    Moves(u8),
    Stats(u8),
    Name(u32, u8),
    Snapshot(u8, bool),
    Restore(Vec<u8>),
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
        max_weight: u64::from(case.max_weight),
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
        for call in case.calls.into_iter().take(32) {
            let rc = match call {
                Call::Upsert(ts) => {
                    let ts: Vec<ta_target> = ts
                        .iter()
                        .take(64)
                        .map(|&(key, placement, job, node, weight)| ta_target {
                            key: key % 64,
                            placement,
                            job: s(pick(job)),
                            node: node.map_or(
                                ta_str {
                                    ptr: std::ptr::null(),
                                    len: 0,
                                },
                                |n| s(pick(n)),
                            ),
                            weight,
                        })
                        .collect();
                    ta_upsert_targets(ta, ts.as_ptr(), ts.len(), err)
                }
                Call::UpsertLabeled(sets) => {
                    let sets: Vec<_> = sets.into_iter().take(16).collect();
                    let jobs: Vec<ta_str> = sets.iter().map(|(j, _)| s(pick(*j))).collect();
                    let counts: Vec<u32> =
                        sets.iter().map(|(_, l)| l.len().min(8) as u32).collect();
                    let mut names = Vec::new();
                    let mut values = Vec::new();
                    for (_, labels) in &sets {
                        for &(n, v) in labels.iter().take(8) {
                            names.push(s(pick(n)));
                            values.push(s(pick(v)));
                        }
                    }
                    let mut keys = vec![0u64; jobs.len()];
                    ta_upsert_labeled_targets(
                        ta,
                        jobs.as_ptr(),
                        counts.as_ptr(),
                        std::ptr::null(),
                        jobs.len(),
                        names.as_ptr(),
                        values.as_ptr(),
                        names.len(),
                        keys.as_mut_ptr(),
                        err,
                    )
                }
                Call::Remove(keys) => {
                    let keys: Vec<u64> = keys.iter().take(64).map(|k| k % 64).collect();
                    ta_remove_targets(ta, keys.as_ptr(), keys.len(), err)
                }
                Call::Add(cs) | Call::SetCollectors(cs) if cs.len() > 40 => ta_result::TA_OK,
                Call::Add(cs) => {
                    let cs = collectors(&cs);
                    ta_add_collectors(ta, cs.as_ptr(), cs.len(), err)
                }
                Call::SetCollectors(cs) => {
                    let cs = collectors(&cs);
                    ta_set_collectors(ta, cs.as_ptr(), cs.len(), err)
                }
                Call::RemoveCollectors(ns) => {
                    let ns: Vec<ta_str> = ns.iter().take(8).map(|&n| s(pick(n))).collect();
                    ta_remove_collectors(ta, ns.as_ptr(), ns.len(), err)
                }
                Call::Lookup(keys) => {
                    let keys: Vec<u64> = keys.iter().take(64).map(|k| k % 64).collect();
                    let mut out = vec![0u32; keys.len()];
                    ta_lookup(ta, keys.as_ptr(), keys.len(), out.as_mut_ptr(), err)
                }
                Call::Targets(c, job, cap) => {
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
                Call::Moves(cap) => {
                    let mut out = vec![ta_move::default(); cap as usize];
                    let mut needed = 0usize;
                    let rc = ta_last_moves(ta, out.as_mut_ptr(), out.len(), &mut needed, err);
                    assert_eq!(rc == ta_result::TA_BUFFER_TOO_SMALL, needed > out.len());
                    rc
                }
                Call::Stats(cap) => {
                    let mut sum = ta_summary::default();
                    ok_code(ta_get_summary(ta, &mut sum, err));
                    let mut out = vec![ta_collector_stats::default(); cap as usize];
                    let mut needed = 0usize;
                    let rc =
                        ta_get_collector_stats(ta, out.as_mut_ptr(), out.len(), &mut needed, err);
                    assert_eq!(rc == ta_result::TA_BUFFER_TOO_SMALL, needed > out.len());
                    assert_eq!(needed as u64, sum.collectors);
                    rc
                }
                Call::Name(id, cap) => {
                    let mut out = vec![0 as std::ffi::c_char; cap as usize];
                    let mut needed = 0usize;
                    ta_collector_name(ta, id % 64, out.as_mut_ptr(), out.len(), &mut needed, err)
                }
                Call::Snapshot(cap, restore) => {
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
                    let mut back: *mut ta_allocator = std::ptr::null_mut();
                    let r = ta_allocator_restore(bytes.as_ptr(), bytes.len(), &mut back, err);
                    ta_allocator_free(back);
                    r
                }
            };
            ok_code(rc);
            if rc != ta_result::TA_OK {
                // A failure carries a message.
                let mut needed = 0usize;
                ok_code(ta_error_message(err, std::ptr::null_mut(), 0, &mut needed));
                assert!(needed > 1, "failure {rc:?} without a message");
                assert!(!ta_result_message(rc as u32).is_null());
            }
        }
        ta_allocator_free(ta);
        ta_error_free(err);
    }
}
