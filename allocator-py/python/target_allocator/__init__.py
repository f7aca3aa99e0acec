"""Which collector scrapes which Prometheus target.

The engine of the OpenTelemetry Target Allocator's strategies (``consistent-hashing``,
bit-compatible with the Go allocator; ``least-weighted``; ``per-node``) and the engine's own
``bounded-hashing`` (weight-capped, even per job, a function of the state) and ``rebalancing``
(sticky, the fewest weight moves that keep every collector within ⌈(1±ε)·W/n⌉) as a Python module, for
capacity planning: build an :class:`Allocator`, feed it collectors and targets (label dicts or
numpy arrays of keys), read assignments, moves and loads, or run a whole scenario with
:func:`simulate`.
"""

from ._native import (
    STRATEGIES,
    Allocator,
    AllocatorError,
    CollectorError,
    ConfigError,
    LabelError,
    Moves,
    RingCapacityError,
    SnapshotError,
    TargetError,
    placement_hash,
    target_key,
)
from .simulate import Event, SimulationResult, simulate

__all__ = [
    "STRATEGIES",
    "Allocator",
    "AllocatorError",
    "CollectorError",
    "ConfigError",
    "Event",
    "LabelError",
    "Moves",
    "RingCapacityError",
    "SimulationResult",
    "SnapshotError",
    "TargetError",
    "placement_hash",
    "simulate",
    "target_key",
]
