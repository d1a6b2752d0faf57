"""Env build benchmark: cold build, warm-cache build into a new env, and no-op reuse; uv and pip.

    python bench/bench_envs.py [--json bench/results.json] [--installers uv pip] [--repeat 50]

Cold builds use an empty installer cache (so they download from the index); warm builds reuse the cache
of the cold one; reuse is ``describe`` + ``ensure`` on an unchanged provider (no installer runs).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Clock, median_ms, run_cli

from hostel.config.plan import load_plan
from hostel.envs import EnvManager

HERE = Path(__file__).resolve().parent
REQUIREMENTS = ["grpcio", "pydantic"]


def _plan(tmp: Path, provider_id: str) -> Any:
    spec_dir = tmp / "providers.d" / "inline" / "tool_runtime"
    spec_dir.mkdir(parents=True, exist_ok=True)
    testprov = HERE.parent / "tests" / "providers" / "testprov"
    (spec_dir / "bench.yaml").write_text(f"module: hostel_testprov\npip_packages: {[*REQUIREMENTS, str(testprov)]}\n")
    config = {
        "external_providers_dir": str(tmp / "providers.d"),
        "providers": {"tool_runtime": [{"provider_id": provider_id, "provider_type": "inline::bench"}]},
    }
    return load_plan(config).provider(provider_id)


async def _build(home: Path, tmp: Path, installer: str, provider_id: str) -> float:
    envs = EnvManager(home, installer=installer)  # type: ignore[arg-type]
    with Clock() as clock:
        _, built = await envs.ensure(await envs.describe(_plan(tmp, provider_id)))
    assert built
    return clock.seconds


async def _reuse(home: Path, tmp: Path, installer: str, provider_id: str, repeat: int) -> list[float]:
    samples = []
    plan = _plan(tmp, provider_id)
    for _ in range(repeat):
        envs = EnvManager(home, installer=installer)  # type: ignore[arg-type]
        with Clock() as clock:
            _, built = await envs.ensure(await envs.describe(plan))
        assert not built
        samples.append(clock.seconds)
    return samples


async def bench(installers: list[str], repeat: int) -> list[dict[str, Any]]:
    rows = []
    for installer in installers:
        with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
            tmp = Path(tmpdir)
            os.environ["UV_CACHE_DIR"] = str(tmp / "uv-cache")
            os.environ["PIP_CACHE_DIR"] = str(tmp / "pip-cache")
            home = tmp / "home"
            cold = await _build(home, tmp, installer, "cold")
            warm = await _build(home, tmp, installer, "warm")
            reuse = await _reuse(home, tmp, installer, "warm", repeat)
            rows.append(
                {
                    "installer": installer,
                    "cold_build_s": cold,
                    "warm_cache_build_s": warm,
                    "noop_reuse_ms": median_ms(reuse),
                    "requirements": " ".join(REQUIREMENTS) + " + a local provider + hostel-sdk; import check included",
                }
            )
    return rows


def main() -> None:
    title = "env builds (targets: no-op reuse < 20 ms, warm-cache build < 1 s with uv)"
    run_cli(__doc__ or "", "envs", title, bench, installers=["uv", "pip"], repeat=50)


if __name__ == "__main__":
    main()
