//! The assignment digest: one 64-bit value that two allocators share exactly when they hold the
//! same targets on the same collectors (up to hash collisions), so replicas can show they agree.
//!
//! `digest = XOR over every assigned target of xxh64(key as 8 LE bytes ‖ xxh64(collector name,
//! 0) as 8 LE bytes, seed 0)`: what is served, target by target. Unassigned targets add
//! nothing, so a placement costs one pair hash and a move two (the digest is on the placement
//! path of a full allocation; a term per unassigned target would triple that cost); replicas
//! that must also agree on the unassigned ones compare `summary().unassigned` beside it. XOR
//! makes it independent of insertion order; the byte layout is fixed, so every platform and
//! binding computes the same value. The allocator keeps it current from each move, so reading it
//! is O(1); 0 is the digest of an assignment with no assigned target.

use xxhash_rust::xxh64::xxh64;

/// Hash of a collector name, as the digest uses it.
#[inline]
pub(crate) fn name_hash(name: &str) -> u64 {
    xxh64(name.as_bytes(), 0)
}

/// One target's share of the digest: XXH64 (seed 0) of `key` then `name_hash`, 8 little-endian
/// bytes each. Written out for exactly these 16 bytes (two 8-byte lanes, no stripe, no tail)
/// because it runs once per placement: the generic `xxh64` call on a buffer cost ~65
/// instructions of a first allocation's ~460 per target. A test holds it equal to `xxh64`.
#[inline]
pub(crate) fn pair(key: u64, name_hash: u64) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    let lane = |h: u64, v: u64| {
        let k = v.wrapping_mul(P2).rotate_left(31).wrapping_mul(P1);
        (h ^ k).rotate_left(27).wrapping_mul(P1).wrapping_add(P4)
    };
    let mut h = lane(lane(P5.wrapping_add(16), key), name_hash);
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_xxh64_of_the_sixteen_bytes() {
        // The written-out form against the xxhash crate's, on values that exercise every bit.
        let mut x = 0x0123_4567_89AB_CDEFu64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let edges = [0, 1, u64::MAX, 1 << 63, 0xFF];
        for (a, b) in edges
            .iter()
            .flat_map(|&a| edges.iter().map(move |&b| (a, b)))
            .chain((0..10_000).map(|_| (next(), next())))
        {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..].copy_from_slice(&b.to_le_bytes());
            assert_eq!(pair(a, b), xxh64(&bytes, 0), "{a:#x} {b:#x}");
        }
    }

    #[test]
    fn pair_layout_is_key_then_name_hash_little_endian() {
        // Spelled out byte by byte, so a change of layout cannot pass unnoticed.
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(pair(1, 2), xxh64(&bytes, 0));
    }
}
