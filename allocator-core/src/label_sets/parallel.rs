//! A large batch of label sets hashed on several threads, with the serial pass's result.
//!
//! The batch is cut into contiguous runs of rows, one per thread. Each thread hashes its run
//! with its own [`KeyHasher`] into its own columns and node table; the calling thread hashes the
//! first run straight into the caller's output, then appends the others in row order, mapping
//! each run's node indexes into the output's table. Since a run's node names are in the order
//! they first appear in it, appending runs in order gives the serial pass's table, name for
//! name. A run stops at its first bad set; the lowest run with one decides the error (the
//! serial pass's first bad set), and the runs before it and its good prefix are the output, as
//! the serial pass leaves them.
//!
//! The threads are scoped to the call (`std::thread::scope`): none outlives it, none is kept in
//! a pool, and the count is the caller's. That keeps the core free of global state; a caller
//! that already runs a pool of its own can instead cut the batch itself and hash each part
//! with [`KeyHasher::hash_label_sets`].

use std::ops::Range;
use std::thread;

use super::{check_columns, HashedSets, LabelSets};
use crate::batch::NO_NODE;
use crate::error::Error;
use crate::hashing::KeyHasher;

/// Fewest label sets handed to one thread: a batch of fewer than twice this many is hashed on
/// the calling thread alone, and a larger one on at most one thread per this many sets.
///
/// Starting and joining a thread measured 9–14 µs at best and 18–31 µs typically on a shared
/// 2-vCPU machine (benches/README.md, "Label hashing on several threads"), the time of ~70–240
/// label sets at ~130 ns a set: at 4,096 sets a thread it is 2–5 % of the thread's work, and
/// from 2 × 4,096 sets on 2 threads the hashing took 0.54–0.99 of the serial time when the
/// second core was free.
pub const MIN_LABEL_SETS_PER_THREAD: usize = 4096;

/// How many threads hash `n` sets when the caller allows `threads` and a thread takes at least
/// `min` sets.
fn threads_for(n: usize, threads: usize, min: usize) -> usize {
    threads.min(n / min.max(1)).max(1)
}

/// The caller's thread count, at most the cores this process may run on: more would only share
/// them, each with its own stack and scratch space (a count of `u32::MAX` started hundreds of
/// threads on a large batch and could exhaust memory). Asked only when more than one thread is
/// allowed.
fn at_most_cores(threads: usize) -> usize {
    if threads <= 1 {
        return threads;
    }
    threads.min(thread::available_parallelism().map_or(1, |c| c.get()))
}

/// `n` rows cut into `parts` contiguous runs of nearly equal length.
fn runs(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts)
        .map(|i| n * i / parts..n * (i + 1) / parts)
        .collect()
}

type Label<'a> = (&'a [u8], &'a [u8]);

impl KeyHasher {
    /// [`KeyHasher::hash_label_sets`] on up to `threads` threads (this one included): the same
    /// `out` in every field — keys, placements, nodes, and `node_names` in the order the names
    /// first appear by row — and on a bad set the same error, for the lowest bad row, with
    /// `out.len()` its index.
    ///
    /// `threads` is the caller's choice (0 and 1 mean this thread alone), capped at the cores
    /// this process may run on (`std::thread::available_parallelism`); a batch of fewer than
    /// `2 * MIN_LABEL_SETS_PER_THREAD` sets is hashed here, a larger one on at most one thread per
    /// [`MIN_LABEL_SETS_PER_THREAD`] sets. Each extra thread is started and joined within the call
    /// (10–30 µs each) and hashes with its own scratch space and node table; the work is split,
    /// not repeated, so it costs CPU time only for the thread starts, each thread's node table
    /// (a node met by several threads is looked up by each) and appending the other threads'
    /// columns: +3.5 % of instructions on 2 threads at 20,000 sets on 1,000 nodes. Threads
    /// help only where cores are idle: on busy cores the call takes as long as the serial pass,
    /// or longer for a small batch whose threads start late, so pass the cores you can spare. A
    /// thread the system refuses to start leaves its sets to this thread.
    ///
    /// ```
    /// use allocator_core::{HashedSets, KeyHasher, LabelSets};
    ///
    /// let addresses: Vec<String> = (0..10_000).map(|i| format!("10.0.{}.{}:9100", i / 256, i % 256)).collect();
    /// let nodes: Vec<String> = (0..10_000).map(|i| format!("node-{}", i % 37)).collect();
    /// let labels: Vec<(&[u8], &[u8])> = (0..10_000)
    ///     .flat_map(|i| [
    ///         (&b"__address__"[..], addresses[i].as_bytes()),
    ///         (&b"__meta_kubernetes_pod_node_name"[..], nodes[i].as_bytes()),
    ///     ])
    ///     .collect();
    /// let sets = LabelSets {
    ///     labels: &labels,
    ///     counts: &vec![2; 10_000],
    ///     jobs: &vec![0; 10_000],
    ///     job_names: &["node-exporter"],
    ///     weights: &[],
    /// };
    /// let (mut serial, mut parallel) = (HashedSets::default(), HashedSets::default());
    /// KeyHasher::new().hash_label_sets(&sets, &mut serial).unwrap();
    /// KeyHasher::new().hash_label_sets_on(&sets, 4, &mut parallel).unwrap();
    /// assert_eq!(parallel.keys, serial.keys);
    /// assert_eq!((parallel.nodes, parallel.node_names), (serial.nodes, serial.node_names));
    /// ```
    pub fn hash_label_sets_on<'a>(
        &mut self,
        sets: &LabelSets<'a>,
        threads: usize,
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error> {
        self.sets_in_runs(sets, at_most_cores(threads), MIN_LABEL_SETS_PER_THREAD, out)
    }

    /// [`KeyHasher::hash_label_sets_on`] with at least `min` sets a thread (tests cut small
    /// batches into many runs).
    fn sets_in_runs<'a>(
        &mut self,
        sets: &LabelSets<'a>,
        threads: usize,
        min: usize,
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error> {
        let n = sets.len();
        out.clear(*sets, n);
        check_columns(sets)?;
        let parts = threads_for(n, threads, min);
        if parts == 1 {
            return self.hash_rows(sets, out);
        }
        let runs = runs(n, parts);
        // Where each run's labels start: the counts before it.
        let mut first_label = Vec::with_capacity(parts + 1);
        let mut at = 0usize;
        for run in &runs {
            first_label.push(at);
            at += sets.counts[run.clone()]
                .iter()
                .map(|&c| c as usize)
                .sum::<usize>();
        }
        first_label.push(at);
        let job_names = sets.job_names;
        self.hash_runs(&runs, out, |hasher, part, run, out| {
            let part_sets = LabelSets {
                labels: &sets.labels[first_label[part]..first_label[part + 1]],
                counts: &sets.counts[run.clone()],
                jobs: &sets.jobs[run],
                job_names,
                weights: &[],
            };
            hasher.hash_rows(&part_sets, out)
        })
    }

    /// [`KeyHasher::hash_label_iters`] on up to `threads` threads, as
    /// [`KeyHasher::hash_label_sets_on`]: label set `i` (of `jobs.len()`) is `set(i)`, called
    /// once per set from whichever thread hashes it. Unlike `hash_label_iters`, a set that
    /// fails does not stop the other threads' sets from being produced; only the output and
    /// error are those of the serial pass. So a `set` that panics on a row after the first bad
    /// one panics here ("a scoped thread panicked") where the serial pass returns that row's
    /// error: `set` must not panic.
    pub fn hash_label_iters_on<'a, F, L>(
        &mut self,
        set: F,
        jobs: &'a [u32],
        job_names: &'a [&'a str],
        threads: usize,
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error>
    where
        F: Fn(usize) -> L + Sync,
        L: Iterator<Item = Label<'a>> + Clone,
    {
        self.iters_in_runs(
            set,
            jobs,
            job_names,
            at_most_cores(threads),
            MIN_LABEL_SETS_PER_THREAD,
            out,
        )
    }

    /// [`KeyHasher::hash_label_iters_on`] with at least `min` sets a thread.
    fn iters_in_runs<'a, F, L>(
        &mut self,
        set: F,
        jobs: &'a [u32],
        job_names: &'a [&'a str],
        threads: usize,
        min: usize,
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error>
    where
        F: Fn(usize) -> L + Sync,
        L: Iterator<Item = Label<'a>> + Clone,
    {
        let n = jobs.len();
        let parts = threads_for(n, threads, min);
        if parts == 1 {
            return self.hash_label_iters((0..n).map(set), jobs, job_names, out);
        }
        let columns = LabelSets {
            jobs,
            job_names,
            ..LabelSets::default()
        };
        out.clear(columns, n);
        self.hash_runs(&runs(n, parts), out, |hasher, _, run, out| {
            for i in run {
                hasher.hash_into(set(i), jobs[i], job_names, out)?;
            }
            Ok(())
        })
    }

    /// Hash each run of rows with `hash` (given a hasher, the run's number, its rows and the
    /// columns to push onto), the first run on this thread into `out`, the others on threads
    /// of their own; then append the others to `out` in order, up to the first that failed.
    fn hash_runs<'a, F>(
        &mut self,
        runs: &[Range<usize>],
        out: &mut HashedSets<'a>,
        hash: F,
    ) -> Result<(), Error>
    where
        F: Fn(&mut KeyHasher, usize, Range<usize>, &mut HashedSets<'a>) -> Result<(), Error> + Sync,
    {
        let hash = &hash;
        let run_part = move |hasher: &mut KeyHasher, part: usize, run: Range<usize>| {
            let mut columns = HashedSets {
                first_row: run.start,
                ..HashedSets::default()
            };
            columns.keys.reserve(run.len());
            columns.placements.reserve(run.len());
            columns.nodes.reserve(run.len());
            let result = hash(hasher, part, run, &mut columns);
            (columns, result)
        };
        thread::scope(|scope| {
            let others: Vec<_> = runs
                .iter()
                .enumerate()
                .skip(1)
                .map(|(part, run)| {
                    let run = run.clone();
                    thread::Builder::new()
                        .spawn_scoped(scope, move || run_part(&mut KeyHasher::new(), part, run))
                        .ok()
                })
                .collect();
            // Returning early leaves the other threads to finish before the scope ends; their
            // output is dropped.
            hash(self, 0, runs[0].clone(), out)?;
            for ((part, run), thread) in runs.iter().enumerate().skip(1).zip(others) {
                let (columns, result) = match thread {
                    Some(thread) => thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    None => run_part(self, part, run.clone()),
                };
                out.append(&columns);
                result?;
            }
            Ok(())
        })
    }
}

impl<'a> HashedSets<'a> {
    /// Append the columns hashed by another thread for the rows after these, their nodes
    /// indexed into this table (names new to it added in their order).
    fn append(&mut self, other: &HashedSets<'a>) {
        let map: Vec<u32> = other
            .node_names
            .iter()
            .map(|&name| match self.node_table.find(name.as_bytes()) {
                Some(i) => i,
                None => {
                    self.node_table
                        .add(name.as_bytes(), self.node_names.len() as u32);
                    self.node_names.push(name);
                    self.node_names.len() as u32 - 1
                }
            })
            .collect();
        self.keys.extend_from_slice(&other.keys);
        self.placements.extend_from_slice(&other.placements);
        self.nodes.extend(
            other
                .nodes
                .iter()
                .map(|&v| if v == NO_NODE { v } else { map[v as usize] }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NODE: &[u8] = b"__meta_kubernetes_pod_node_name";
    /// Node names of the generated sets; the last is not UTF-8.
    const NODES: [&[u8]; 6] = [
        b"node-a", b"node-b", b"node-c", b"node-d", b"node-e", b"\xffbad",
    ];

    /// One generated label set: its address, node, job, and how it may be bad.
    #[derive(Clone, Debug)]
    struct Row {
        address: Option<u16>,
        node: Option<usize>,
        job: u32,
        repeated: bool,
        rotate: usize,
    }

    /// Mostly good rows (a bad node, a missing address, a repeated name or a job out of range
    /// each in ~1 row of 200), with nodes drawn so that runs see them in different orders.
    fn row() -> impl Strategy<Value = Row> {
        (
            prop::option::weighted(0.995, any::<u16>()),
            prop::option::weighted(0.8, prop_oneof![199 => 0..5usize, 1 => Just(5usize)]),
            prop_oneof![199 => 0..2u32, 1 => Just(2u32)],
            prop::bool::weighted(0.005),
            0..5usize,
        )
            .prop_map(|(address, node, job, repeated, rotate)| Row {
                address,
                node,
                job,
                repeated,
                rotate,
            })
    }

    /// The rows' label sets as owned bytes.
    fn label_sets(rows: &[Row]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut set = vec![
                    (b"job".to_vec(), format!("j{}", i % 3).into_bytes()),
                    (b"__meta_kubernetes_namespace".to_vec(), b"default".to_vec()),
                    (b"instance".to_vec(), format!("i{i}").into_bytes()),
                ];
                if let Some(a) = r.address {
                    set.push((
                        b"__address__".to_vec(),
                        format!("10.0.0.{a}:80").into_bytes(),
                    ));
                }
                if let Some(n) = r.node {
                    set.push((NODE.to_vec(), NODES[n].to_vec()));
                }
                if r.repeated {
                    set.push((b"instance".to_vec(), b"again".to_vec()));
                }
                let len = set.len();
                set.rotate_left(r.rotate % len);
                set
            })
            .collect()
    }

    /// The columns of `sets`.
    fn columns(sets: &[Vec<(Vec<u8>, Vec<u8>)>]) -> (Vec<Label<'_>>, Vec<u32>) {
        let labels = sets
            .iter()
            .flatten()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let counts = sets.iter().map(|s| s.len() as u32).collect();
        (labels, counts)
    }

    /// Everything a caller can read of a hashing's result: keys, placements, nodes, node names
    /// and the result.
    type Seen<'a> = (
        Vec<u64>,
        Vec<u64>,
        Vec<u32>,
        Vec<&'a str>,
        Result<(), Error>,
    );

    /// What a caller can read of `out` after a hashing that returned `result`.
    fn seen<'a>(out: &HashedSets<'a>, result: Result<(), Error>) -> Seen<'a> {
        let batch_len = out.batch().len();
        assert_eq!(batch_len, out.len());
        (
            out.keys.clone(),
            out.placements.clone(),
            out.nodes.clone(),
            out.node_names.clone(),
            result,
        )
    }

    const JOBS: &[&str] = &["a", "b"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn threads_give_the_serial_result_and_error(
            rows in prop::collection::vec(row(), 0..120),
            threads in 1..=8usize,
            min in 1..=20usize,
        ) {
            let owned = label_sets(&rows);
            let (labels, counts) = columns(&owned);
            let jobs: Vec<u32> = rows.iter().map(|r| r.job).collect();
            let sets = LabelSets { labels: &labels, counts: &counts, jobs: &jobs, job_names: JOBS, weights: &[] };
            let mut serial = HashedSets::default();
            let expected = KeyHasher::new().hash_label_sets(&sets, &mut serial);
            let expected = seen(&serial, expected);
            // The same hasher and output reused, as a caller does.
            let mut hasher = KeyHasher::new();
            let mut parallel = HashedSets::default();
            for _ in 0..2 {
                let result = hasher.sets_in_runs(&sets, threads, min, &mut parallel);
                prop_assert_eq!(&seen(&parallel, result), &expected);
            }
            // The iterator form, against its serial pass.
            let mut starts = vec![0usize];
            starts.extend(counts.iter().scan(0usize, |at, &c| { *at += c as usize; Some(*at) }));
            let set = |i: usize| labels[starts[i]..starts[i + 1]].iter().copied();
            let mut serial = HashedSets::default();
            let expected = KeyHasher::new().hash_label_iters((0..rows.len()).map(set), &jobs, JOBS, &mut serial);
            let expected = seen(&serial, expected);
            let result = hasher.iters_in_runs(set, &jobs, JOBS, threads, min, &mut parallel);
            prop_assert_eq!(seen(&parallel, result), expected);
        }
    }

    /// 64 good rows whose nodes cycle with a different phase in each run of 16.
    fn good_rows() -> Vec<Row> {
        (0..64)
            .map(|i| Row {
                address: Some(i as u16),
                node: (i % 7 != 3).then_some((i * 3 + i / 16) % 5),
                job: (i % 2) as u32,
                repeated: false,
                rotate: i % 5,
            })
            .collect()
    }

    #[test]
    fn bad_sets_in_several_runs_give_the_first_ones_error_and_prefix() {
        let mut rows = good_rows();
        rows[40].address = None;
        rows[50].node = Some(5);
        rows[20].repeated = true;
        rows[60].job = 7;
        for first_bad in [20, 40, 50, 60] {
            let owned = label_sets(&rows);
            let (labels, counts) = columns(&owned);
            let jobs: Vec<u32> = rows.iter().map(|r| r.job).collect();
            let sets = LabelSets {
                labels: &labels,
                counts: &counts,
                jobs: &jobs,
                job_names: JOBS,
                weights: &[],
            };
            let mut serial = HashedSets::default();
            let expected = KeyHasher::new().hash_label_sets(&sets, &mut serial);
            assert!(expected.is_err());
            assert_eq!(serial.len(), first_bad);
            let expected = seen(&serial, expected);
            for threads in 2..=8 {
                let mut out = HashedSets::default();
                let result = KeyHasher::new().sets_in_runs(&sets, threads, 1, &mut out);
                assert_eq!(seen(&out, result), expected, "{threads} threads");
            }
            // Mend this one: the next bad row decides.
            match first_bad {
                20 => rows[20].repeated = false,
                40 => rows[40].address = Some(40),
                50 => rows[50].node = Some(1),
                _ => {}
            }
        }
    }

    #[test]
    fn a_node_table_spanning_runs_is_the_serial_one() {
        let owned = label_sets(&good_rows());
        let (labels, counts) = columns(&owned);
        let jobs = vec![0; counts.len()];
        let sets = LabelSets {
            labels: &labels,
            counts: &counts,
            jobs: &jobs,
            job_names: JOBS,
            weights: &[],
        };
        let mut serial = HashedSets::default();
        KeyHasher::new()
            .hash_label_sets(&sets, &mut serial)
            .unwrap();
        assert_eq!(serial.node_names.len(), 5);
        for threads in 1..=8 {
            let mut out = HashedSets::default();
            KeyHasher::new()
                .sets_in_runs(&sets, threads, 1, &mut out)
                .unwrap();
            assert_eq!(out.node_names, serial.node_names, "{threads} threads");
            assert_eq!(out.nodes, serial.nodes, "{threads} threads");
            assert_eq!(out.keys, serial.keys, "{threads} threads");
        }
        // Through the public call, above the threshold: 2 and 3 runs.
        let many: Vec<Row> = (0..3 * MIN_LABEL_SETS_PER_THREAD)
            .map(|i| Row {
                node: Some((i / 1000 + i) % 5),
                ..good_rows()[i % 64].clone()
            })
            .collect();
        let owned = label_sets(&many);
        let (labels, counts) = columns(&owned);
        let jobs = vec![1; counts.len()];
        let sets = LabelSets {
            labels: &labels,
            counts: &counts,
            jobs: &jobs,
            job_names: JOBS,
            weights: &[],
        };
        let mut serial = HashedSets::default();
        KeyHasher::new()
            .hash_label_sets(&sets, &mut serial)
            .unwrap();
        for threads in [2, 3, 8] {
            let mut out = HashedSets::default();
            KeyHasher::new()
                .hash_label_sets_on(&sets, threads, &mut out)
                .unwrap();
            assert_eq!(
                seen(&out, Ok(())),
                seen(&serial, Ok(())),
                "{threads} threads"
            );
            assert_eq!(out.batch().jobs, serial.batch().jobs);
        }
    }

    #[test]
    fn threads_are_one_per_min_sets_and_never_more_than_asked() {
        let m = MIN_LABEL_SETS_PER_THREAD;
        assert_eq!(threads_for(0, 8, m), 1);
        assert_eq!(threads_for(2 * m - 1, 8, m), 1);
        assert_eq!(threads_for(2 * m, 8, m), 2);
        assert_eq!(threads_for(3 * m - 1, 8, m), 2);
        assert_eq!(threads_for(100 * m, 8, m), 8);
        assert_eq!(threads_for(100 * m, 0, m), 1);
        assert_eq!(threads_for(100 * m, 1, m), 1);
        // The caller's count is capped at the cores, asked only for more than one thread.
        let cores = thread::available_parallelism().map_or(1, |c| c.get());
        assert_eq!(at_most_cores(usize::MAX), cores);
        assert_eq!((at_most_cores(0), at_most_cores(1)), (0, 1));
        assert_eq!(threads_for(5, 8, 0), 5);
    }

    #[test]
    fn runs_cover_every_row_once_in_order() {
        for n in [0, 1, 7, 8192, 10_001] {
            for parts in 1..=8 {
                let r = runs(n, parts);
                assert_eq!(r.len(), parts);
                assert_eq!(r[0].start, 0);
                assert_eq!(r[parts - 1].end, n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                assert!(r.iter().all(|x| x.len() >= n / parts));
            }
        }
    }
}
