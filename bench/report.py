"""Scenario results, the Markdown report and the plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Plot",
    "Ratio",
    "ScenarioResult",
    "Table",
    "Target",
    "percentile",
    "write_plot",
    "write_report",
]


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True)
class Ratio:
    """A target that is a ratio to a baseline measured in the same run."""

    value: float
    goal: float
    at_least: bool = True  # the target is `value >= goal`; otherwise `value <= goal`
    # Why a miss is a known limit rather than a regression (then it never fails the run).
    known_limit: str | None = None

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    @property
    def grossly_missed(self) -> bool:
        """Missed by more than a factor of 2: a regression, not noise (fails the run)."""
        if self.known_limit is not None:
            return False
        if self.at_least:
            return self.value < self.goal / 2
        return self.value > self.goal * 2


@dataclass
class Target:
    """One target of the issue, the figure measured against it, and whether it holds."""

    text: str
    measured: str
    met: bool
    ratio: Ratio | None = None

    @classmethod
    def of_ratio(cls, text: str, measured: str, ratio: Ratio) -> Target:
        return cls(text, measured, ratio.met, ratio)

    @property
    def grossly_missed(self) -> bool:
        return self.ratio is not None and self.ratio.grossly_missed


@dataclass
class Plot:
    """Delay against load: one line per system."""

    file_name: str
    title: str
    x_label: str
    y_label: str
    series: dict[str, list[tuple[float, float]]]
    log_x: bool = False
    limit: float | None = 250.0  # a horizontal line: the target's delay limit


@dataclass
class Table:
    """A further table of a scenario, below its main one."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class ScenarioResult:
    number: int
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def write_plot(plot: Plot, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, points in plot.series.items():
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            axes.plot(xs, ys, marker="o", label=name)
    axes.set_title(plot.title)
    axes.set_xlabel(plot.x_label)
    axes.set_ylabel(plot.y_label)
    if plot.log_x:
        axes.set_xscale("log")
    axes.set_yscale("log")
    if plot.limit is not None:
        axes.axhline(plot.limit, color="grey", linestyle="--", linewidth=0.8)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(folder / plot.file_name, dpi=90)
    plt.close(figure)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


FINDINGS = Path(__file__).resolve().parent / "findings.md"


def write_report(
    results: list[ScenarioResult], path: Path, header: list[str], *, with_plots: bool
) -> None:
    """The Markdown report; bench/findings.md (what limits the missed targets) is appended."""
    lines = ["# Benchmarks", "", *header, ""]
    summary = [
        [str(r.number), r.title, t.text, t.measured, "met" if t.met else "**MISSED**"]
        for r in results
        for t in r.targets
    ]
    lines += ["## Targets", ""]
    lines += _table(["#", "scenario", "target", "measured", "result"], summary)
    for result in results:
        lines += ["", f"## {result.number}. {result.title}", ""]
        if result.error:
            lines += [f"The scenario failed: `{result.error}`", ""]
        if result.rows:
            lines += _table(result.headers, result.rows)
            lines.append("")
        for table in result.tables:
            lines += [f"{table.title}:", "", *_table(table.headers, table.rows), ""]
        lines += [f"- {note}" for note in result.notes]
        lines.append(f"- Scenario time: {result.seconds:.0f} s.")
        if with_plots:
            for plot in result.plots:
                lines += ["", f"![{plot.title}]({plot.file_name})"]
    if FINDINGS.exists():
        lines += ["", FINDINGS.read_text(encoding="utf-8").rstrip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
