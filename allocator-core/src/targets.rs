//! The target table: packed records in a slab with stable slots, a key index, and the bucket
//! index strategies use to find the targets a collector change can move.
//!
//! A record is 40 bytes; with the key index (about 10 bytes a target) and a bucket entry
//! (4 bytes) the core stays within its 64-bytes-per-target budget. Labels never live here.

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use crate::ids::{TargetKey, NONE};

/// What the core keeps of one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TargetRecord {
    pub key: u64,
    pub placement: u64,
    /// Job id; NONE marks a free slot.
    pub job: u32,
    /// Node id or NONE.
    pub node: u32,
    pub weight: u32,
    /// Assigned collector id or NONE.
    pub collector: u32,
    /// Position in its bucket list (or the next free slot, for a free slot).
    pub bucket_pos: u32,
}

impl TargetRecord {
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.job != NONE
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Targets {
    slots: Vec<TargetRecord>,
    free_head: u32,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    len: usize,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            slots: Vec::new(),
            free_head: NONE,
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            len: 0,
        }
    }
}

impl Targets {
    #[inline]
    fn hash(&self, key: u64) -> u64 {
        // Keys can come from callers (any u64), so they are mixed before indexing.
        self.hasher.hash_one(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        let hasher = &self.hasher;
        let slots = &self.slots;
        self.index
            .reserve(additional, |&s| hasher.hash_one(slots[s as usize].key));
        self.slots.reserve(additional);
    }

    #[inline]
    pub(crate) fn find(&self, key: TargetKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(self.hash(key.0), |&s| slots[s as usize].key == key.0)
            .copied()
    }

    #[inline]
    pub(crate) fn get(&self, slot: u32) -> &TargetRecord {
        &self.slots[slot as usize]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, slot: u32) -> &mut TargetRecord {
        &mut self.slots[slot as usize]
    }

    /// Every slot's record, live or free, in slot order.
    pub(crate) fn records(&self) -> &[TargetRecord] {
        &self.slots
    }

    pub(crate) fn records_mut(&mut self) -> &mut [TargetRecord] {
        &mut self.slots
    }

    /// The slot of the record's key, inserting the record if the key is new.
    /// Returns the slot and whether it was inserted.
    pub(crate) fn find_or_insert(&mut self, record: TargetRecord) -> (u32, bool) {
        debug_assert!(record.is_live());
        let hash = self.hash(record.key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        let entry = self.index.entry(
            hash,
            |&s| slots[s as usize].key == record.key,
            |&s| hasher.hash_one(slots[s as usize].key),
        );
        match entry {
            Entry::Occupied(e) => (*e.get(), false),
            Entry::Vacant(v) => {
                let slot = if self.free_head != NONE {
                    let slot = self.free_head;
                    self.free_head = self.slots[slot as usize].bucket_pos;
                    self.slots[slot as usize] = record;
                    slot
                } else {
                    self.slots.push(record);
                    (self.slots.len() - 1) as u32
                };
                v.insert(slot);
                self.len += 1;
                (slot, true)
            }
        }
    }

    /// Whether no slot was ever used (a full allocation can then use [`Targets::insert_fresh`]).
    pub(crate) fn is_pristine(&self) -> bool {
        self.slots.is_empty()
    }

    /// Insert rows `0..count` into a pristine table, as [`Targets::find_or_insert`] row by row
    /// would: a key's first row takes the next slot, a repeated key's later rows insert
    /// nothing. Returns `None` when no key repeats (row `i` is then slot `i`, the common case),
    /// else each row's slot (a repeat: its key's); the caller tells a first row by its slot
    /// being the next one.
    ///
    /// At scale the key index is far larger than the caches and row order is random in it, so
    /// inserting row by row costs a cache miss or two per row, the largest single cost of a full
    /// allocation. Here the index is filled in the order of its own memory instead (rows
    /// grouped by the high bits of their home bucket, a counting sort), then, only if a key
    /// repeats, its values are renumbered from rows to slots.
    pub(crate) fn insert_fresh(
        &mut self,
        count: usize,
        key: impl Fn(usize) -> u64,
        record: impl Fn(usize) -> TargetRecord,
    ) -> Option<Vec<u32>> {
        let repeats = self.index_fresh(count, &key);
        if repeats.is_empty() {
            // Every row is its key's first: row `i` takes slot `i`, which the index holds.
            self.slots.extend((0..count).map(record));
            self.len = count;
            return None;
        }
        // Slots in row order: the first row of each key takes the next one.
        let mut slot_of = vec![NONE; count];
        for &(row, first) in &repeats {
            slot_of[row as usize] = first;
        }
        self.slots.reserve(count);
        for i in 0..count {
            slot_of[i] = match slot_of[i] {
                NONE => {
                    self.slots.push(record(i));
                    (self.slots.len() - 1) as u32
                }
                row => slot_of[row as usize],
            };
        }
        for v in self.index.iter_mut() {
            *v = slot_of[*v as usize];
        }
        self.len = self.slots.len();
        Some(slot_of)
    }

    /// [`Targets::insert_fresh`] of records whose keys are all distinct, already in the order
    /// of their slots: the vector becomes the table's records as it is (no copy).
    pub(crate) fn insert_fresh_distinct(&mut self, records: Vec<TargetRecord>) {
        let repeats = self.index_fresh(records.len(), |i| records[i].key);
        debug_assert!(repeats.is_empty(), "keys are distinct");
        self.len = records.len();
        self.slots = records;
    }

    /// Fill the index of a pristine table with rows `0..count` (row `i` for slot `i`) in the
    /// index's own memory order; returns the rows whose key an earlier row holds, as (row,
    /// first row), which the index does not hold.
    fn index_fresh(&mut self, count: usize, key: impl Fn(usize) -> u64) -> Vec<(u32, u32)> {
        debug_assert!(self.is_pristine() && count < NONE as usize);
        let hasher = &self.hasher;
        let hashes: Vec<u64> = (0..count).map(|i| hasher.hash_one(key(i))).collect();
        self.index.reserve(count, |&i| hashes[i as usize]);
        // The home bucket of a hash is its low bits under the table's power-of-two mask
        // (hashbrown's layout; were it another, only locality would suffer, never the result).
        let buckets = (self.index.capacity() / 7 * 8).max(1).next_power_of_two();
        let bits = buckets.trailing_zeros();
        let shift = bits - bits.min(12);
        let group = |h: u64| ((h as usize) & (buckets - 1)) >> shift;
        let mut starts = vec![0u32; (buckets >> shift) + 1];
        for &h in &hashes {
            starts[group(h) + 1] += 1;
        }
        for g in 1..starts.len() {
            starts[g] += starts[g - 1];
        }
        // (hash, row) by home, so the pass below reads them in order; a row's key is read only
        // to tell a repeat from a tag collision.
        let mut by_home = vec![(0u64, 0u32); count];
        for (i, &h) in hashes.iter().enumerate() {
            let at = &mut starts[group(h)];
            by_home[*at as usize] = (h, i as u32);
            *at += 1;
        }
        drop((starts, hashes));
        // Rows of one key share a hash, so they meet in row order: the first one is indexed,
        // a later one is noted as (row, first row). Repeats are rare (a listing names a target
        // once), so they are kept aside rather than in a column of every row.
        let mut repeats: Vec<(u32, u32)> = Vec::new();
        for &(h, i) in &by_home {
            let entry = self.index.entry(
                h,
                |&r| key(r as usize) == key(i as usize),
                |&r| hasher.hash_one(key(r as usize)),
            );
            match entry {
                Entry::Occupied(e) => repeats.push((i, *e.get())),
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        repeats
    }

    /// Remove the record in a slot; returns it.
    pub(crate) fn remove(&mut self, slot: u32) -> TargetRecord {
        let record = self.slots[slot as usize];
        let hash = self.hash(record.key);
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        let free = &mut self.slots[slot as usize];
        free.job = NONE;
        free.collector = NONE;
        free.bucket_pos = self.free_head;
        self.free_head = slot;
        self.len -= 1;
        record
    }

    /// Every live slot with its record, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &TargetRecord)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_live())
            .map(|(i, r)| (i as u32, r))
    }

    /// Number of slots, live or free (the bound of slot numbers).
    pub(crate) fn capacity_slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes held by the table itself (records and index), for memory reports.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<TargetRecord>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

/// Lists of target slots per bucket (a ring partition, or a node for `per-node`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Buckets {
    lists: Vec<Vec<u32>>,
}

impl Buckets {
    // Inlined: it is on the placement path of every new target, where the call's own cost was
    // a third of it (callgrind).
    #[inline]
    pub(crate) fn insert(&mut self, bucket: u32, slot: u32, records: &mut [TargetRecord]) {
        if bucket == NONE {
            return;
        }
        let b = bucket as usize;
        if b >= self.lists.len() {
            self.lists.resize_with(b + 1, Vec::new);
        }
        records[slot as usize].bucket_pos = self.lists[b].len() as u32;
        self.lists[b].push(slot);
    }

    /// Make room for targets about to be inserted into these buckets, so that a large batch
    /// fills each list once instead of growing it by doubling.
    pub(crate) fn reserve(&mut self, buckets: &[u32]) {
        if buckets.len() < 4096 {
            return;
        }
        let mut counts: Vec<u32> = vec![0; self.lists.len()];
        for &b in buckets {
            if b == NONE {
                continue;
            }
            if b as usize >= counts.len() {
                counts.resize(b as usize + 1, 0);
            }
            counts[b as usize] += 1;
        }
        if counts.len() > self.lists.len() {
            self.lists.resize_with(counts.len(), Vec::new);
        }
        for (list, &n) in self.lists.iter_mut().zip(&counts) {
            list.reserve(n as usize);
        }
    }

    pub(crate) fn remove(&mut self, bucket: u32, slot: u32, records: &mut [TargetRecord]) {
        if bucket == NONE {
            return;
        }
        let list = &mut self.lists[bucket as usize];
        let pos = records[slot as usize].bucket_pos as usize;
        debug_assert_eq!(list[pos], slot);
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            records[moved as usize].bucket_pos = pos as u32;
        }
    }

    pub(crate) fn slots(&self, bucket: u32) -> &[u32] {
        self.lists
            .get(bucket as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.lists.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.lists.iter().map(|l| l.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn record(key: u64, job: u32) -> TargetRecord {
        TargetRecord {
            key,
            placement: key ^ 1,
            job,
            node: NONE,
            weight: 1,
            collector: NONE,
            bucket_pos: 0,
        }
    }

    proptest! {
        /// Bulk insertion numbers slots, keeps records and answers lookups exactly as
        /// `find_or_insert` row by row does, repeated keys included (few distinct keys make
        /// many repeats).
        #[test]
        fn insert_fresh_is_find_or_insert_row_by_row(
            keys in vec(0u64..40, 0..300),
            wide in vec(any::<u64>(), 0..3000),
            narrow in any::<bool>(),
        ) {
            let keys = if narrow { keys } else { wide };
            let mut bulk = Targets::default();
            let slots = bulk.insert_fresh(keys.len(), |i| keys[i], |i| record(keys[i], i as u32));
            // `None`: no key repeats, every row took the slot of its number.
            let repeats = slots.is_some();
            let slots = slots.unwrap_or_else(|| (0..keys.len() as u32).collect());
            let mut seen = std::collections::HashSet::new();
            prop_assert_eq!(repeats, !keys.iter().all(|k| seen.insert(*k)));
            let mut single = Targets::default();
            let mut next = 0;
            for (i, &key) in keys.iter().enumerate() {
                let (slot, inserted) = single.find_or_insert(record(key, i as u32));
                prop_assert_eq!(slots[i], slot);
                prop_assert_eq!(slot == next, inserted);
                if inserted {
                    next += 1;
                }
            }
            prop_assert_eq!(bulk.len(), single.len());
            prop_assert_eq!(bulk.capacity_slots(), single.capacity_slots());
            for &key in &keys {
                let slot = bulk.find(TargetKey(key));
                prop_assert_eq!(slot, single.find(TargetKey(key)));
                let slot = slot.unwrap();
                prop_assert_eq!(bulk.get(slot), single.get(slot));
            }
            prop_assert_eq!(bulk.find(TargetKey(u64::MAX - 7)), single.find(TargetKey(u64::MAX - 7)));
        }
    }
}
