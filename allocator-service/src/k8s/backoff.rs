//! The pause between failed attempts to list or watch a kind.

use std::time::Duration;

/// The pause between failed attempts to list or watch: client-go's reflector backoff (800 ms
/// doubling to 30 s), reset by progress (a complete list, an object event). kube's own
/// backoff is reset by the `Init` its watcher reports before every attempt to list, so a kind
/// that cannot be listed was retried about once a second forever.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The pause before the next attempt; the one after it is twice as long (at most 30 s).
    pub fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(Self::MAX);
        now
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_thirty_seconds_and_resets() {
        let mut b = Backoff::new();
        let steps: Vec<u64> = (0..8).map(|_| b.step().as_millis() as u64).collect();
        assert_eq!(steps, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(800));
    }
}
