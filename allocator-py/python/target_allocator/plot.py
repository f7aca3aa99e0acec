"""Plots of simulation results (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .simulate import SimulationResult


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loads(results: Sequence[SimulationResult], path: str, event: int = -1, by: str = "targets") -> None:
    """Per-collector load after one event (default: the last), one panel per strategy, sorted
    from busiest to idlest, with the mean as a line. ``by`` is ``"targets"`` or ``"weight"``."""
    if by not in ("targets", "weight"):
        raise ValueError(f"by must be 'targets' or 'weight', not {by!r}")
    column, ratio = ("loads", "max_over_mean") if by == "targets" else ("weights", "weight_max_over_mean")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), sharey=True, squeeze=False)
    for ax, result in zip(axes[0], results):
        row = result.rows[event]
        loads = sorted((int(x) for x in row[column]), reverse=True)
        ax.bar(range(len(loads)), loads, width=1.0, color="#4c78a8")
        if loads:
            mean = sum(loads) / len(loads)
            ax.axhline(mean, color="#e45756", linewidth=1, label=f"mean {mean:.0f}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{result.strategy}\n{row['event']}: max/mean {row[ratio]:.2f}", fontsize=9)
        ax.set_xlabel("collectors (busiest first)")
    axes[0][0].set_ylabel(by)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_moves(results: Sequence[SimulationResult], path: str) -> None:
    """Targets moved between collectors per event, one bar group per strategy."""
    plt = _pyplot()
    events = [r["event"] for r in results[0].rows[1:]]
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, result in enumerate(results):
        moved = [r["moved"] for r in result.rows[1:]]
        ax.bar([x + i * width for x in range(len(events))], moved, width=width, label=result.strategy)
    ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(events))])
    ax.set_xticklabels(events, fontsize=8)
    ax.set_ylabel("targets moved")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
