//! Inputs that would make the ring ask for gigabytes at once are refused with a clear error
//! before any allocation, and nothing changes.

use allocator_core::{Allocator, CollectorSpec, Config, ConfigError, Error, Strategy};

#[test]
fn collectors_times_replication_beyond_the_ring_limit_is_a_config_error() {
    let mut cfg = Config::with_strategy(Strategy::ConsistentHashing);
    cfg.ring.replication_factor = 4096;
    let mut a = Allocator::new(cfg).unwrap();
    let names: Vec<String> = (0..100_000).map(|i| format!("collector-{i}")).collect();
    let specs: Vec<CollectorSpec<'_>> = names.iter().map(|n| CollectorSpec::new(n)).collect();
    let err = a.set_collectors(&specs).unwrap_err();
    assert_eq!(
        err,
        Error::Config(ConfigError::RingTooLarge {
            collectors: 100_000,
            replication_factor: 4096
        })
    );
    assert!(
        err.to_string().contains("lower the replication factor"),
        "{err}"
    );
    assert_eq!(a.collectors().count(), 0, "a refused list changes nothing");
}

#[test]
fn the_ring_limit_is_exact() {
    let mut cfg = Config::with_strategy(Strategy::ConsistentHashing);
    cfg.ring.replication_factor = 4096;
    let max = allocator_core::MAX_RING_POINTS as usize / 4096;
    assert_eq!(cfg.ring.check_members(max), Ok(()));
    assert!(cfg.ring.check_members(max + 1).is_err());
}

#[test]
fn bounded_hashing_refuses_more_collectors_than_its_probe_ring_holds() {
    // 128 points a collector at least: 65,537 collectors would need more than MAX_RING_POINTS
    // (a user-style review built a ring of 400k collectors, 1.5 GB, from one JSON input).
    let mut a = Allocator::new(Config::with_strategy(Strategy::BoundedHashing)).unwrap();
    let max = allocator_core::MAX_RING_POINTS / 128;
    let names: Vec<String> = (0..=max).map(|i| format!("collector-{i}")).collect();
    let specs: Vec<CollectorSpec<'_>> = names.iter().map(|n| CollectorSpec::new(n)).collect();
    let err = a.set_collectors(&specs).unwrap_err();
    assert_eq!(err, Error::Config(ConfigError::ProbeRingTooLarge(max + 1)));
    assert!(err.to_string().contains("65536 collectors"), "{err}");
    assert_eq!(a.collectors().count(), 0, "a refused list changes nothing");
}
