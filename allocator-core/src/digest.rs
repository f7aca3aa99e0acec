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

/// One target's share of the digest.
#[inline]
pub(crate) fn pair(key: u64, name_hash: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&key.to_le_bytes());
    b[8..].copy_from_slice(&name_hash.to_le_bytes());
    xxh64(&b, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_layout_is_key_then_name_hash_little_endian() {
        // Spelled out byte by byte, so a change of layout cannot pass unnoticed.
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(pair(1, 2), xxh64(&bytes, 0));
    }
}
