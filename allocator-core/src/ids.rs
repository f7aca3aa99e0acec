//! Newtypes for the identities the core works with.

use std::fmt;

/// The identity of a target: the Go allocator's *item hash* (DESIGN.md §6.2).
///
/// Two targets with the same key are one target. Compute it with [`TargetKey::from_labels`]
/// or, after relabeling, with [`crate::LabelBuilder::target_key`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TargetKey(pub u64);

impl fmt::Display for TargetKey {
    /// Sixteen lowercase hex digits, the form the `allocate` tool prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetKey({:016x})", self.0)
    }
}

/// Where a target is placed by consistent hashing: XXH64 of its raw `__address__` (DESIGN.md §6.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct PlacementHash(pub u64);

impl PlacementHash {
    /// The placement hash of a target address exactly as discovery reported it.
    ///
    /// ```
    /// use allocator_core::PlacementHash;
    /// assert_eq!(PlacementHash::of_address("test-url").0 % 1061, 828);
    /// ```
    pub fn of_address(address: &str) -> Self {
        Self::of_bytes(address.as_bytes())
    }

    /// The placement hash of an address given as bytes.
    pub fn of_bytes(address: &[u8]) -> Self {
        PlacementHash(xxhash_rust::xxh64::xxh64(address, 0))
    }
}

macro_rules! dense_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub(crate) u32);

        impl $name {
            /// The dense index behind this id (stable while the item exists).
            pub fn index(self) -> u32 {
                self.0
            }

            /// The id with a given dense index, as handed across an FFI boundary. It means
            /// something only to the allocator that issued it; lookups of an index that names
            /// nothing return `None`.
            pub fn from_index(index: u32) -> Self {
                $name(index)
            }
        }
    };
}

dense_id!(
    /// A collector known to an [`crate::Allocator`], meaningful to that allocator only: ids are
    /// reused after a collector is removed (ids of removed collectors stay readable until the
    /// next diff, so the moves of the last diff can always be named), and an allocator restored
    /// from a snapshot numbers its collectors afresh. Name collectors across allocators, diffs
    /// that remove them, or a restore ([`crate::Allocator::collector_name`]).
    CollectorId
);
dense_id!(
    /// An interned job name.
    JobId
);
dense_id!(
    /// An interned node name.
    NodeId
);

/// Sentinel for "no id" in the packed target records.
pub(crate) const NONE: u32 = u32::MAX;

pub(crate) fn opt(raw: u32) -> Option<u32> {
    (raw != NONE).then_some(raw)
}
