//! The collector table: names, nodes and dense ids, alive ones kept sorted by name.
//!
//! A removed collector's id is *retired*: still readable by name until the next diff, so the moves
//! of the last diff can always be named, and only then reused.

use hashbrown::HashMap;

use crate::error::Error;
use crate::ids::{CollectorId, NONE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    Alive,
    Retired,
    Free,
}

#[derive(Debug, Clone)]
pub(crate) struct CollectorSlot {
    pub name: Box<str>,
    /// Node id or NONE.
    pub node: u32,
    pub state: SlotState,
    /// Hash of the name, for the assignment digest (readable until the id is reused).
    pub name_hash: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Collectors {
    slots: Vec<CollectorSlot>,
    by_name: HashMap<Box<str>, u32, ahash::RandomState>,
    /// Alive collectors sorted by name: the tie-break order of every strategy.
    sorted: Vec<CollectorId>,
    retired: Vec<u32>,
    free: Vec<u32>,
}

impl Collectors {
    pub(crate) fn find(&self, name: &str) -> Option<CollectorId> {
        self.by_name.get(name).map(|&i| CollectorId(i))
    }

    pub(crate) fn get(&self, id: u32) -> Option<&CollectorSlot> {
        self.slots
            .get(id as usize)
            .filter(|s| s.state != SlotState::Free)
    }

    #[inline]
    pub(crate) fn is_alive(&self, id: u32) -> bool {
        self.slots
            .get(id as usize)
            .is_some_and(|s| s.state == SlotState::Alive)
    }

    /// Alive collectors sorted by name.
    pub(crate) fn sorted(&self) -> &[CollectorId] {
        &self.sorted
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Number of slots (the bound of collector ids).
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Retired ids of the previous diff become reusable.
    pub(crate) fn release_retired(&mut self) {
        for id in self.retired.drain(..) {
            self.slots[id as usize].state = SlotState::Free;
            self.free.push(id);
        }
    }

    pub(crate) fn retire(&mut self, id: CollectorId) {
        let slot = &mut self.slots[id.0 as usize];
        slot.state = SlotState::Retired;
        self.by_name.remove(&slot.name);
        self.retired.push(id.0);
    }

    pub(crate) fn add(&mut self, name: &str, node: u32) -> Result<CollectorId, Error> {
        let slot = CollectorSlot {
            name: name.into(),
            node,
            state: SlotState::Alive,
            name_hash: crate::digest::name_hash(name),
        };
        let id = if let Some(id) = self.free.pop() {
            self.slots[id as usize] = slot;
            id
        } else {
            let id = u32::try_from(self.slots.len())
                .ok()
                .filter(|&id| id < NONE)
                .ok_or(Error::Capacity("collectors"))?;
            self.slots.push(slot);
            id
        };
        self.by_name.insert(name.into(), id);
        Ok(CollectorId(id))
    }

    /// The digest's name hash of a collector id (alive or retired; None for NONE).
    #[inline]
    pub(crate) fn name_hash(&self, id: u32) -> Option<u64> {
        self.get(id).map(|slot| slot.name_hash)
    }

    pub(crate) fn set_node(&mut self, id: CollectorId, node: u32) {
        self.slots[id.0 as usize].node = node;
    }

    /// Recompute the name order after adds and removals.
    pub(crate) fn resort(&mut self) {
        self.sorted.clear();
        self.sorted.extend(
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state == SlotState::Alive)
                .map(|(i, _)| CollectorId(i as u32)),
        );
        let slots = &self.slots;
        self.sorted
            .sort_unstable_by(|a, b| slots[a.0 as usize].name.cmp(&slots[b.0 as usize].name));
    }
}
