//! Snapshots restore the same state and behaviour; bad bytes are errors, never panics.

mod common;

use allocator_core::{Allocator, Config, Error, SnapshotError, Strategy};
use common::{assignment, make_step, named_moves, Universe};
use proptest::prelude::*;

fn configs() -> Vec<Config> {
    let mut out: Vec<Config> = Strategy::ALL
        .into_iter()
        .map(Config::with_strategy)
        .collect();
    let mut pn = Config::with_strategy(Strategy::PerNode);
    pn.fallback = Some(Strategy::LeastWeighted);
    out.push(pn);
    let mut ch = Config::default();
    ch.ring.version = "v1.0.0".parse().unwrap();
    ch.ring.partition_count = 101;
    out.push(ch);
    out
}

type Script = Vec<(Vec<usize>, Vec<usize>)>;

fn script(len: std::ops::Range<usize>) -> impl proptest::strategy::Strategy<Value = Script> {
    prop::collection::vec(
        (
            prop::collection::vec(0..80usize, 0..30),
            prop::collection::vec(0..8usize, 0..3),
        ),
        len,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_restored_allocator_has_the_same_assignments_and_the_same_behaviour_on_the_next_diffs(
        seed in any::<u64>(), before in script(1..8), after in script(1..6),
    ) {
        let u = Universe::new(seed, 80, 8);
        for config in configs() {
            let mut a = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; 80], vec![false; 8]);
            for (tt, tc) in &before {
                a.apply(&make_step(tt, tc, &mut pt, &mut pc).diff(&u)).unwrap();
            }
            let bytes = a.snapshot();
            let mut b = Allocator::restore(&bytes).unwrap();
            prop_assert_eq!(assignment(&a), assignment(&b));
            prop_assert_eq!(b.snapshot(), bytes.clone(), "same state, same bytes");
            prop_assert_eq!(a.move_totals(), b.move_totals());
            prop_assert_eq!(a.summary(), b.summary());
            for (tt, tc) in &after {
                let step = make_step(tt, tc, &mut pt, &mut pc);
                let ma = a.apply(&step.diff(&u)).unwrap().to_vec();
                let mb = b.apply(&step.diff(&u)).unwrap().to_vec();
                prop_assert_eq!(named_moves(&a, &ma), named_moves(&b, &mb), "{:?}", config);
                prop_assert_eq!(assignment(&a), assignment(&b));
            }
        }
    }

    #[test]
    fn corrupted_snapshot_bytes_are_an_error_not_a_panic(
        seed in any::<u64>(), flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..4),
    ) {
        let u = Universe::new(seed, 40, 6);
        let a = common::build(Config::default(), &u, &(0..40).collect::<Vec<_>>(), &[0, 1, 2]);
        let mut bytes = a.snapshot();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        prop_assert!(Allocator::restore(&bytes).is_err());
    }
}

#[test]
fn truncated_snapshot_bytes_are_an_error_at_every_length() {
    let u = Universe::new(7, 30, 4);
    let a = common::build(
        Config::with_strategy(Strategy::LeastWeighted),
        &u,
        &(0..30).collect::<Vec<_>>(),
        &[0, 1, 2, 3],
    );
    let bytes = a.snapshot();
    for len in 0..bytes.len() {
        let err = Allocator::restore(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, Error::Snapshot(SnapshotError::Truncated { .. })),
            "{len}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Allocator::restore(&longer).is_err());
}

#[test]
fn foreign_and_future_snapshots_are_refused_with_a_clear_error() {
    let a = Allocator::new(Config::default()).unwrap();
    let mut bytes = a.snapshot();
    assert!(Allocator::restore(&bytes).is_ok());
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    let err = Allocator::restore(&bytes).unwrap_err();
    assert_eq!(
        err,
        Error::Snapshot(SnapshotError::Version {
            found: 99,
            supported: allocator_core::snapshot::FORMAT_VERSION
        })
    );
    assert!(err.to_string().contains("version 99"));
    let err =
        Allocator::restore(b"{\"strategy\": \"consistent-hashing\", \"targets\": []}").unwrap_err();
    assert_eq!(err, Error::Snapshot(SnapshotError::NotASnapshot));
}

/// Bytes with a valid checksum but a state no diff sequence produces (a target on a collector
/// that is not listed) are refused by the semantic checks.
#[test]
fn a_well_formed_archive_describing_an_impossible_state_is_refused() {
    let u = Universe::new(3, 10, 3);
    let a = common::build(Config::default(), &u, &(0..10).collect::<Vec<_>>(), &[0]);
    let bytes = a.snapshot();
    // Every target references collector #0; try rewriting each aligned u32 of the archive to 5
    // (with the checksum fixed) until one of those references is hit.
    let body = &bytes[32..];
    let mut found = false;
    for i in 0..body.len() - 4 {
        let mut forged = bytes.clone();
        forged[32 + i..32 + i + 4].copy_from_slice(&5u32.to_le_bytes());
        let sum = xx64(&forged[32..]);
        forged[24..32].copy_from_slice(&sum.to_le_bytes());
        if let Err(Error::Snapshot(SnapshotError::Invalid(msg))) = Allocator::restore(&forged) {
            if msg.contains("collector #5 of 1") {
                found = true;
                break;
            }
        }
    }
    assert!(found, "a forged collector reference is detected");
}

fn xx64(b: &[u8]) -> u64 {
    // An independent XXH64 (seed 0) so the test does not call the code it checks.
    const P1: u64 = 0x9E3779B185EBCA87;
    const P2: u64 = 0xC2B2AE3D27D4EB4F;
    const P3: u64 = 0x165667B19E3779F9;
    const P4: u64 = 0x85EBCA77C2B2AE63;
    const P5: u64 = 0x27D4EB2F165667C5;
    let round = |acc: u64, x: u64| {
        acc.wrapping_add(x.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    };
    let merge = |acc: u64, v: u64| (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4);
    let rd = |s: &[u8]| u64::from_le_bytes(s[..8].try_into().unwrap());
    let mut i = 0;
    let mut h = if b.len() >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while i + 32 <= b.len() {
            for (k, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, rd(&b[i + 8 * k..]));
            }
            i += 32;
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(b.len() as u64);
    while i + 8 <= b.len() {
        h = (h ^ round(0, rd(&b[i..])))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= b.len() {
        let x = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as u64;
        h = (h ^ x.wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        i += 4;
    }
    while i < b.len() {
        h = (h ^ (b[i] as u64).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[test]
fn every_single_byte_flip_of_a_snapshot_is_refused() {
    let u = Universe::new(11, 12, 3);
    let a = common::build(
        Config::with_strategy(Strategy::PerNode),
        &u,
        &(0..12).collect::<Vec<_>>(),
        &[0, 1, 2],
    );
    let bytes = a.snapshot();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(
            Allocator::restore(&bad).is_err(),
            "flip at byte {i} accepted"
        );
    }
}

/// A flipped byte with the checksum recomputed (a forged or mis-repaired snapshot) is either a
/// valid state or a snapshot error: never a configuration error or another kind, whichever field
/// the byte lands in (strategy codes, ring parameters, load factor, ...).
#[test]
fn a_flip_with_a_recomputed_checksum_is_a_snapshot_error() {
    let u = Universe::new(5, 12, 3);
    for cfg in [
        Config::default(),
        Config::with_strategy(Strategy::BoundedHashing),
    ] {
        let a = common::build(cfg, &u, &(0..12).collect::<Vec<_>>(), &[0, 1, 2]);
        let bytes = a.snapshot();
        for i in 32..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut forged = bytes.clone();
                forged[i] ^= bit;
                let sum = xx64(&forged[32..]);
                forged[24..32].copy_from_slice(&sum.to_le_bytes());
                if let Err(e) = Allocator::restore(&forged) {
                    assert!(
                        matches!(e, Error::Snapshot(_)),
                        "flip {bit:#x} at byte {i} ({cfg:?}): {e:?}"
                    );
                }
            }
        }
    }
}
