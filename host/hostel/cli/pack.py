"""``hostel pack``: one file with everything ``hostel build --locked`` needs, for a machine with no package index
(``hostel.envs.bundle``; docs/envs.md)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from hostel.cli.envs import build_all, manager, report
from hostel.config.plan import load_plan
from hostel.envs import default_home
from hostel.envs.bundle import Packer
from hostel.envs.lock import lock_path
from hostel.errors import ConfigError, Problem


async def pack(config: str, output: Path, *, providers: Sequence[str] = (), interpreters: bool = True) -> int:
    """Build (or find built) each provider's locked env, then write the bundle of what those builds installed
    (``interpreters``: and the managed Pythons they were built with).

    Refuses a config without a lock, or whose lock is stale for a provider, naming what to run."""
    plan = load_plan(config)
    err = Console(stderr=True)
    lock = lock_path(plan.config)
    if not lock.exists():
        raise ConfigError([Problem(str(lock), "", "no lock: a bundle carries a lock's pins; run `hostel lock CONFIG`")])
    local = [p.provider_id for p in plan.providers if p.builds_env]
    unknown = sorted(set(providers) - set(local))
    if unknown:
        raise ConfigError(
            [Problem(plan.config.label, "", f"--provider {', '.join(unknown)}: not a provider with a local env here; "
                     f"these are: {', '.join(local) or 'none'}")]
        )  # fmt: skip
    # A locked build of each: it checks the lock is current for the provider and leaves its local wheels built.
    results = await build_all(plan, manager(plan, locked=True), err, only=providers)
    if report(results, err):
        err.print("hostel: no bundle written: fix the failed builds first (a stale lock: run `hostel lock` again)")
        return 1
    home = default_home()
    output = output.resolve()
    with tempfile.TemporaryDirectory(prefix=".hostel-pack-", dir=output.parent) as staging:
        packer = Packer(home, Path(staging) / "bundle", pass_env=plan.settings.pass_env, interpreters=interpreters)
        for result in results:
            assert result.spec is not None
            err.print(f"{result.provider_id}: packing {len(result.spec.pins)} pins")
            await packer.add(result.spec)
            if packer.providers[result.provider_id].get("interpreter"):
                err.print(
                    f"{result.provider_id}: packing its Python, {packer.providers[result.provider_id]['interpreter']}"
                )
        packer.add_files([(lock, lock.name), *_spec_files(plan.config.external_providers_dir)])
        manifest = packer.write(output)
    size = output.stat().st_size
    print(f"wrote {output} ({len(manifest['providers'])} providers, {len(manifest['files'])} files, "
          f"{size / 2**20:.1f} MiB)")  # fmt: skip
    return 0


def _spec_files(directory: Path | None) -> list[tuple[Path, str]]:
    """The provider spec files a run config reads (its ``external_providers_dir``), for the record."""
    if directory is None or not directory.is_dir():
        return []
    return [(p, f"providers.d/{p.relative_to(directory).as_posix()}") for p in sorted(directory.rglob("*.yaml"))]
