"""Markdown formatting of ``rnnkit bench``'s two tables (plain functions over the measured rows)."""
from __future__ import annotations

import statistics

from .memory import MemoryRow
from .peak import Peak
from .rows import Entry, Row
from .timing import fmt_int, paired_ratio

MAIN_COLUMNS = ["kind", "B, T, H", "rnnkit path", "tokens/s", "GFLOP/s", "% of sgemm peak",
                "vs torch fused", "vs Python loop", "vs NumPy reference", "vs Keras 3"]
MEMORY_COLUMNS = ["BPTT", "T", "updates", "ms per sequence", "ms per update", "peak memory (MiB)"]


def markdown(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """A Markdown table; columns whose index is in `right` are right-aligned."""
    for r in rows:
        assert len(r) == len(headers), (r, headers)
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(cells) + " |" for cells in [headers, rule, *rows]]
    return "\n".join(lines)


def ratio_text(r: float) -> str:
    return f"{r:.0f}×" if r >= 10 else f"{r:.2f}×"


def _vs(row_key: str | None, rk: Entry, entries: dict[str, Entry], label: str, missing: str) -> str:
    """'1.02× nn.LSTM': the other's step time over rnnkit's, median over rounds (> 1: rnnkit is faster)."""
    if row_key is None:
        return missing
    other = entries.get(row_key)
    if other is None or not other.step_times:
        return "failed (see below)"
    return f"{ratio_text(paired_ratio(rk.step_times, other.step_times))} {label}".rstrip()


def main_rows(rows: list[Row], entries: dict[str, Entry], peak: Peak) -> list[list[str]]:
    out = []
    for row in rows:
        B, T, H = row.shape
        shape = f"{B}, {T}, {H}"
        rk = entries.get(row.rk)
        if rk is None or not rk.step_times:
            out.append([row.kind, shape, row.path, "failed (see below)"] + ["—"] * (len(MAIN_COLUMNS) - 4))
            continue
        seconds = statistics.median(rk.step_times)
        gflops = row.flops / seconds / 1e9
        out.append([
            row.kind, shape, row.path,
            fmt_int(B * T / seconds),
            f"{gflops:.1f}",
            f"{100 * gflops / peak.gflops:.0f}%" if gflops / peak.gflops >= 0.1 else f"{100 * gflops / peak.gflops:.1f}%",
            _vs(row.torch, rk, entries, row.torch, "—"),
            _vs(row.loop, rk, entries, "", "—"),
            _vs(row.reference, rk, entries, row.reference_note, row.reference_note),
            _vs(row.keras, rk, entries, row.keras_note, row.keras_note),
        ])
    return out


def memory_rows(rows: list[MemoryRow], k: int) -> list[list[str]]:
    out = []
    for r in rows:
        peak = "n/a" if r.peak_bytes is None else f"{r.peak_bytes / 2 ** 20:,.1f}"
        out.append(["full" if r.mode == "full" else f"truncated, k={k}", str(r.steps), str(r.updates),
                    f"{r.seconds * 1e3:,.1f}", f"{r.seconds_per_update * 1e3:,.1f}", peak])
    return out
