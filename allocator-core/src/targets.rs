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
