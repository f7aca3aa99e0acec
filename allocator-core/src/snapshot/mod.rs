//! Snapshots: the whole allocation state as bytes, so a restarted allocator resumes without
//! reshuffling.
//!
//! Layout: a 32-byte header — magic `TALLOCSN`, format version (u32 LE), reserved (u32), payload
//! length (u64 LE), XXH64 of the payload (u64 LE) — then an rkyv archive (little endian, 32-bit
//! offsets, so the same bytes restore on every platform). Restore checks the header and checksum,
//! validates the archive with bytecheck, then validates every id and name before building the
//! indexes; any failure is an [`Error::Snapshot`](crate::Error::Snapshot), never a panic.
//!
//! Collectors are stored sorted by name and referenced by position, so collector ids (which
//! depend on history) never reach the bytes; a restored allocator numbers them afresh. Only what
//! decisions need is stored; loads, buckets, ring tables and the set of targets
//! awaiting re-placement are derived again on restore, so they cannot disagree with the data.

mod codec;
mod state;

pub use codec::FORMAT_VERSION;
