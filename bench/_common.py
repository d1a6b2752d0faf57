"""Helpers shared by the benchmarks: timing, tables, JSON output."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def median_ms(samples: Sequence[float]) -> float:
    """Median of samples given in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


class Clock:
    """``with Clock() as c: ...; c.seconds``."""

    def __enter__(self) -> Clock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Print rows (dicts with the same keys) as an aligned table."""
    if not rows:
        return
    header = list(rows[0])
    cells = [[_fmt(r[h]) for h in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_json(path: Path | None, section: str, rows: Any) -> None:
    """Merge ``rows`` under ``section`` into the JSON results file."""
    if path is None:
        return
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = rows
    path.write_text(json.dumps(data, indent=2) + "\n")
