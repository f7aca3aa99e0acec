//! `least-weighted` (DESIGN.md §6.4): sticky. A new or orphaned target goes to the collector with
//! the fewest targets (or least weight, when weighted); ties go to the fewest targets of the same
//! job, then to the smallest name. Callers visit targets in key order, so results reproduce.

use super::Ctx;
use crate::ids::NONE;
use crate::targets::TargetRecord;

pub(crate) fn choose(t: &TargetRecord, ctx: &Ctx<'_>) -> u32 {
    let loads = ctx.loads;
    let same_job = &loads.per_job[t.job as usize];
    let mut best = NONE;
    let mut best_key = (u64::MAX, u32::MAX);
    // Collectors are visited in name order and only a strictly smaller key wins,
    // so the smallest name wins every full tie.
    for &c in ctx.collectors.sorted() {
        let i = c.index() as usize;
        let load = if ctx.weighted {
            loads.weight[i]
        } else {
            u64::from(loads.count[i])
        };
        let key = (load, same_job[i]);
        if best == NONE || key < best_key {
            best = c.index();
            best_key = key;
        }
    }
    best
}
