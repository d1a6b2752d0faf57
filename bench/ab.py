"""Before/after: run benchmarks from two git revisions on this machine, interleaved, and compare their figures.

    python bench/ab.py --before REV [--after REV] [--rounds 3] [--bench calls supervisor scale lifecycle]
                       [--json FILE]

Each revision is checked out in a temporary git worktree and runs its own ``bench/bench_<name>.py`` against
its own ``host/`` and ``sdk/`` (``PYTHONPATH``), with this checkout's virtualenv; ``--after`` defaults to the
working tree itself. Rounds alternate before, after, before, after ... so that a machine getting busier or
quieter shifts both sides alike. The table gives, for every figure a benchmark prints for hostel, the median
over the rounds on each side, its range, and after / before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _worktree(rev: str, into: Path) -> Path:
    path = into / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), rev], check=True)
    return path


def _run(tree: Path, name: str, out: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'host'}{os.pathsep}{tree / 'sdk'}"}
    command = [sys.executable, str(tree / "bench" / f"bench_{name}.py"), "--json", str(out)]
    subprocess.run(command, check=True, env=env, cwd=tree, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    return [row for rows in data.values() for row in rows]


def _figures(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each row's hostel figure by its name (the benchmarks name them ``metric`` or ``what``, and the figure
    ``hostel``, ``value``, ``figure``, or for the bridge its ratio to the same providers in process)."""
    figures: dict[str, float] = {}
    for row in rows:
        name = row.get("metric", row.get("what"))
        value = next(
            (
                row[k]
                for k in ("hostel", "value", "figure", "bridged/in_process")
                if isinstance(row.get(k), (int, float))
            ),
            None,
        )
        if name is not None and value is not None:
            figures[str(name)] = float(value)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--after", default=None, help="git revision (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bench", nargs="+", default=["calls", "supervisor", "scale", "lifecycle"])
    parser.add_argument("--json", type=Path, default=None, help="write every round's figures here")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostel-ab-") as scratch:
        root = Path(scratch)
        trees = {"before": _worktree(opts.before, root)}
        trees["after"] = _worktree(opts.after, root) if opts.after else REPO
        try:
            seen: dict[str, dict[str, dict[str, list[float]]]] = {}
            for name in opts.bench:
                for round_ in range(opts.rounds):
                    for side in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                        out = root / f"{name}-{side}-{round_}.json"
                        for metric, value in _figures(_run(trees[side], name, out)).items():
                            seen.setdefault(name, {}).setdefault(metric, {}).setdefault(side, []).append(value)
                        print(f"{name}: round {round_ + 1} {side} done", file=sys.stderr, flush=True)
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    if opts.json is not None:
        opts.json.write_text(json.dumps(seen, indent=2) + "\n")
    print(f"| benchmark | figure | before ({opts.before}) | after ({opts.after or 'working tree'}) | after / before |")
    print("| --- | --- | --- | --- | --- |")
    for name, metrics in seen.items():
        for metric, sides in metrics.items():
            if len(sides) < 2:
                continue
            cells = [
                f"{statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g})" for v in (sides["before"], sides["after"])
            ]
            before, after = statistics.median(sides["before"]), statistics.median(sides["after"])
            ratio = f"{after / before:.2f}" if before else "-"
            print(f"| {name} | {metric} | {cells[0]} | {cells[1]} | {ratio} |")


if __name__ == "__main__":
    main()
