//! The allocator behind a Python `Allocator`: a read/write lock that a forked child never waits
//! on forever.
//!
//! Writes release the GIL, so another thread may hold the lock when the process forks (the
//! default of `multiprocessing` on Linux before Python 3.14). The child inherits the lock as it
//! was, held by a thread that does not exist there, and a blocking acquire would hang for good.
//! So in a process other than the one that created the allocator the lock is only tried: free,
//! it is taken as usual (no write was under way at the fork, the copied state is whole); held,
//! the call fails naming the cause instead of hanging.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use allocator_core as core;

pub struct Shared {
    /// The process that created the allocator (the lock blocks there as usual).
    pid: u32,
    lock: RwLock<core::Allocator>,
}

/// The lock was held by a thread of the parent process at the fork.
#[derive(Debug)]
pub struct Inherited {
    pub parent: u32,
    pub writing: bool,
}

impl std::fmt::Display for Inherited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = if self.writing {
            "a thread of that process was using it"
        } else {
            "a thread of that process was reading it"
        };
        write!(
            f,
            "this Allocator was created in process {} and inherited through fork while {held}; \
             that thread does not exist in this process, so it can never finish: build the \
             Allocator here or send its snapshot() bytes and Allocator.restore them",
            self.parent
        )
    }
}

impl Shared {
    pub fn new(a: core::Allocator) -> Self {
        Shared {
            pid: std::process::id(),
            lock: RwLock::new(a),
        }
    }

    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    pub fn read(&self) -> Result<RwLockReadGuard<'_, core::Allocator>, Inherited> {
        if !self.forked() {
            return Ok(self.lock.read());
        }
        self.lock.try_read().ok_or(Inherited {
            parent: self.pid,
            writing: true,
        })
    }

    pub fn write(&self) -> Result<RwLockWriteGuard<'_, core::Allocator>, Inherited> {
        if !self.forked() {
            return Ok(self.lock.write());
        }
        // Held for writing or reading at the fork; `try_read` tells which, for the message.
        self.lock.try_write().ok_or_else(|| Inherited {
            parent: self.pid,
            writing: self.lock.try_read().is_none(),
        })
    }
}
