//! Per-collector load (target count and weight) and per-job counts, kept current on every
//! assignment change. `least-weighted` decides from these; queries and stats read them.

use crate::ids::NONE;

#[derive(Debug, Clone, Default)]
pub(crate) struct Loads {
    /// Targets per collector id.
    pub count: Vec<u32>,
    /// Weight per collector id.
    pub weight: Vec<u64>,
    /// Targets per job and collector id: `per_job[job][collector]`.
    pub per_job: Vec<Vec<u32>>,
    /// Targets per job, assigned or not.
    pub job_total: Vec<u32>,
    /// Targets with no collector.
    pub unassigned: usize,
}

impl Loads {
    /// Make room for collector ids below `collectors` and job ids below `jobs`.
    pub(crate) fn grow(&mut self, collectors: usize, jobs: usize) {
        if self.count.len() < collectors {
            self.count.resize(collectors, 0);
            self.weight.resize(collectors, 0);
            for row in &mut self.per_job {
                row.resize(collectors, 0);
            }
        }
        if self.per_job.len() < jobs {
            let width = self.count.len();
            self.per_job.resize_with(jobs, || vec![0; width]);
            self.job_total.resize(jobs, 0);
        }
    }

    /// A collector id is being reused: it must start empty.
    pub(crate) fn reset_collector(&mut self, c: u32) {
        debug_assert_eq!(self.count[c as usize], 0);
        self.count[c as usize] = 0;
        self.weight[c as usize] = 0;
        for row in &mut self.per_job {
            row[c as usize] = 0;
        }
    }

    #[inline]
    pub(crate) fn add(&mut self, collector: u32, job: u32, weight: u32) {
        if collector == NONE {
            self.unassigned += 1;
            return;
        }
        let c = collector as usize;
        self.count[c] += 1;
        self.weight[c] += u64::from(weight);
        self.per_job[job as usize][c] += 1;
    }

    #[inline]
    pub(crate) fn sub(&mut self, collector: u32, job: u32, weight: u32) {
        if collector == NONE {
            self.unassigned -= 1;
            return;
        }
        let c = collector as usize;
        self.count[c] -= 1;
        self.weight[c] -= u64::from(weight);
        self.per_job[job as usize][c] -= 1;
    }
}
