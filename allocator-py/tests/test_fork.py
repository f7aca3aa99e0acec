"""A process forked while another thread writes to an Allocator inherits its lock held by a
thread that does not exist in the child: every call there must fail naming the cause, never
wait forever. With the lock free at the fork the child uses its copy as usual."""

import os
import signal
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import target_allocator as ta

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Child exit codes.
SUMMARY_OK = 10
REFUSED_NAMING_FORK = 11
OTHER_ERROR = 12


def fork_and_call(a: ta.Allocator) -> int:
    """Fork; the child calls `a.summary()` and then a write under a 10 s alarm, and reports by
    its exit code (SIGALRM, a hang, kills it)."""
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock: what is tested here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = OTHER_ERROR
        try:
            signal.alarm(10)
            try:
                a.summary()
                a.set_collectors(["child-0", "child-1"])
                code = SUMMARY_OK
            except RuntimeError as e:
                code = REFUSED_NAMING_FORK if "inherited through fork" in str(e) else OTHER_ERROR
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)} (a hang)"
    return os.WEXITSTATUS(status)


def test_child_forked_during_writes_fails_instead_of_hanging() -> None:
    a = ta.Allocator("rebalancing")
    a.set_collectors([f"c{i}" for i in range(50)])
    keys = np.arange(1, 400_001, dtype=np.uint64)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            # Alternating sizes: every call moves targets, holding the write lock for a while.
            a.set_targets(keys[: 200_000 + (i % 2) * 200_000], jobs="j")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        outcomes = [fork_and_call(a) for _ in range(8)]
    finally:
        stop.set()
        thread.join()
    assert OTHER_ERROR not in outcomes, outcomes
    # The writer holds the lock most of the time: some forks must have met it held.
    assert REFUSED_NAMING_FORK in outcomes, outcomes


def test_child_forked_while_idle_uses_its_copy() -> None:
    a = ta.Allocator("consistent-hashing")
    a.set_collectors(["a", "b", "c"])
    a.set_targets(np.arange(1, 1001, dtype=np.uint64), jobs="j")
    assert fork_and_call(a) == SUMMARY_OK
    # The parent's allocator is untouched by the child's write.
    assert a.collectors == ["a", "b", "c"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
