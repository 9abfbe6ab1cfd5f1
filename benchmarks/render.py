"""Number formats and Markdown tables shared by every family."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from statistics import median

from benchmarks._registry import Table


def fmt_int(v) -> str:
    return "" if v is None else f"{int(v):,}"


def fmt_opt(v, fmt: str = ".4f") -> str:
    """``v`` formatted, or an empty cell when there is none."""
    return "" if v is None else format(v, fmt)


def fmt_rate(v: float) -> str:
    """rows/s: 1,234,567 style; short enough for a table."""
    return f"{v:,.0f}"


def fmt_mb(peak: float | None, base: float | None = None) -> str:
    if peak is None:
        return ""
    return f"{peak:,.0f}" + ("" if base is None else f" ({base:,.0f})")


def fmt_ratio(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}x"


def fmt_spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """Median, with (min-max) when there is more than one run."""
    if not values:
        return ""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def load_cells(r) -> list[str]:
    """[own cpu/wall, others' cpu/wall] medians for a Result: threading used, and contention."""
    runs = [x for x in r.ok_runs if x.get("wall_s")]
    own = [x["cpu_s"] / x["wall_s"] for x in runs if "cpu_s" in x]
    other = [x["other_cpu_s"] / x["wall_s"] for x in runs if "other_cpu_s" in x]
    return [f"{median(own):.2f}" if own else "", f"{median(other):.2f}" if other else ""]


def target_cell(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def markdown(table: Table) -> str:
    cols = table.columns
    lines = [f"### {table.title}", "", "| " + " | ".join(cols) + " |"]
    align = table.align or "l" + "r" * (len(cols) - 1)
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    for row in table.rows:
        cells = [str(c).replace("|", "\\|") for c in row] + [""] * (len(cols) - len(row))
        lines.append("| " + " | ".join(cells[: len(cols)]) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def markdown_all(tables: Iterable[Table]) -> str:
    return "\n".join(markdown(t) for t in tables)
