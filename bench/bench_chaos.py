"""The chaos suite's figures: for each fault of the chaos provider, what the caller saw and how long until
the provider served again, with the innocent neighbour's latency meanwhile.

    python bench/bench_chaos.py [--json bench/results.json]

Runs tests/test_chaos.py (through `hostel run`, as a user would) with HOSTEL_CHAOS_REPORT set, and prints
the rows it reports. Recovery is from the faulty call's start until the provider is ready with a new worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import run_cli


async def bench() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmp:
        report = Path(tmp) / "chaos.json"
        suite = str(HERE.parent / "tests" / "test_chaos.py")
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", suite],
            env={**os.environ, "HOSTEL_CHAOS_REPORT": str(report)},
            cwd=HERE.parent,
            check=True,
        )
        rows = json.loads(report.read_text())
    return [
        {
            "fault": row["fault"],
            "caller saw": f"{row['http']} {row['error'] or ''}".strip() if row["http"] else "-",
            "state after": row["state_after"],
            "recovery (s)": row["recovery_s"] if row["recovery_s"] is not None else "-",
            "innocent p50/p99 (ms)": (
                f"{row['innocent_p50_ms']:.1f} / {row['innocent_p99_ms']:.1f}" if "innocent_p50_ms" in row else "-"
            ),
        }
        for row in rows
    ]


def main() -> None:
    run_cli(__doc__ or "", "chaos", "Chaos suite: fault -> what the caller saw -> recovery", bench)


if __name__ == "__main__":
    main()
