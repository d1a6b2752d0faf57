"""The env commands of the CLI: ``build``, ``lock``, ``envs list``, ``envs prune``.

Progress goes to stderr (a live rich display on a terminal, plain lines otherwise); tables to stdout.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uv
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hostel.config.plan import Plan, ProviderPlan, load_plan
from hostel.envs import LAST_USED_FILE, EnvManager, InstallerName, default_home, dir_size, iter_envs
from hostel.envs.builder import module_near_miss, top_level_modules
from hostel.envs.bundle import open_bundle
from hostel.envs.hashes import artifact_hashes
from hostel.envs.lock import LockedProvider, lock_path, read_lock, write_lock
from hostel.envs.spec import EnvSpec
from hostel.errors import HostelError


@dataclass
class BuildResult:
    """How one provider's env build went."""

    provider_id: str
    status: str  # built | reused | failed
    seconds: float
    spec: EnvSpec | None = None
    path: Path | None = None
    error: HostelError | None = None


def manager(
    plan: Plan, *, installer: str | None = None, locked: bool = False, bundle: Path | None = None
) -> EnvManager:
    """The EnvManager for a plan, honouring ``--installer``, ``--locked`` and ``--bundle`` (unpacked and checked
    here, before any build)."""
    return EnvManager(
        installer=cast(InstallerName, installer or plan.settings.installer),
        build_timeout_s=plan.settings.build_timeout_s,
        lock=read_lock(lock_path(plan.config)) if locked else None,
        pass_env=plan.settings.pass_env,
        bundle=open_bundle(bundle.resolve(), default_home()) if bundle is not None else None,
    )


async def build_all(plan: Plan, envs: EnvManager, console: Console, only: Sequence[str] = ()) -> list[BuildResult]:
    """Build every local provider env (or those ``only`` names), a few at a time; one failure does not stop the
    others.

    Providers run by the container or Ray launcher have no local env (their image / runtime_env holds them).
    """
    live = console.is_terminal
    providers = [p for p in plan.providers if p.builds_env and (not only or p.provider_id in only)]

    async def one(provider: ProviderPlan, progress: Progress | None) -> BuildResult:
        started = time.monotonic()
        task = progress.add_task(f"{provider.provider_id}: building", total=None) if progress else None
        if not live:
            console.print(f"{provider.provider_id}: building env")
        try:
            spec = await envs.describe(provider)
            env, built = await envs.ensure(spec)
            # A build's own time, not the wait for one of the manager's build slots.
            seconds = float(env.metadata.get("build_seconds", 0)) if built else time.monotonic() - started
            result = BuildResult(provider.provider_id, "built" if built else "reused", seconds, spec, env.path)
        except HostelError as exc:
            result = BuildResult(provider.provider_id, "failed", time.monotonic() - started, error=exc)
        line = f"{provider.provider_id}: {result.status} in {result.seconds:.2f}s"
        if progress is not None and task is not None:
            progress.update(task, description=line, completed=1, total=1)
        else:
            console.print(line)
        return result

    if live:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            return list(await asyncio.gather(*(one(p, progress) for p in providers)))
    return list(await asyncio.gather(*(one(p, None) for p in providers)))


async def module_problems(plan: Plan) -> list[str]:
    """For each provider whose env is built: its module, if that module is not in the env (with the near miss it
    probably meant). No installer and no subprocess: a glance at each env's site-packages."""
    envs = manager(plan)
    problems = []
    for provider in (p for p in plan.providers if p.builds_env):
        try:
            spec = await envs.describe(provider)
        except HostelError:
            continue  # `check --deep` reports what keeps it from being described
        path = envs.envs_dir / spec.dirname
        module = (provider.spec.declared or (provider.spec.module, None))[0]
        if envs.status(spec) != "built" or module.partition(".")[0] in top_level_modules(path):
            continue
        close = module_near_miss(module, path)
        problems.append(
            f"provider {provider.provider_id!r}: module {module!r} is not in its env ({path})"
            + (f"; did you mean {close!r}?" if close else "; add the package that provides it to pip_packages")
        )
    return problems


async def deep_check(plan: Plan) -> list[str]:
    """Build every env (reusing built ones), check each provider imports, and validate each provider's config
    against its config class in its env; the problems, if any. Config keys the class has no field for are
    warned about on stderr (a model that ignores extras would drop them silently)."""
    err = Console(stderr=True)
    envs = manager(plan)
    results = await build_all(plan, envs, err)
    problems = [str(r.error) for r in results if r.error is not None]
    by_id = {p.provider_id: p for p in plan.providers}
    for result in results:
        if result.error is not None or result.spec is None:
            continue
        provider = by_id[result.provider_id]
        env, _ = await envs.ensure(result.spec)
        checked = await envs.check_config(provider, result.spec, env)
        for key, close in checked.get("unknown_keys") or ():
            hint = f" (did you mean {close!r}?)" if close else ""
            err.print(
                f"hostel: warning: provider {provider.provider_id}: config key {key!r} is not a field of its config "
                f"class{hint}",
                markup=False, highlight=False, soft_wrap=True,
            )  # fmt: skip
        if checked.get("error"):
            problems.append(f"provider {provider.provider_id!r}: {checked['error']}")
    return problems


def summary(results: Sequence[BuildResult]) -> Table:
    """The end-of-build table: provider, status, seconds, env size."""
    table = Table("provider", "status", "seconds", "size", box=None, header_style="bold")
    for r in results:
        size = _human(dir_size(r.path)) if r.path else "-"
        table.add_row(r.provider_id, r.status, f"{r.seconds:.2f}", size)
    return table


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def report(results: Sequence[BuildResult], err: Console) -> int:
    Console().print(summary(results))
    failures = [r for r in results if r.error is not None]
    for r in failures:
        err.print(f"hostel: error: {r.error}", markup=False, highlight=False)
    return 1 if failures else 0


async def build(config: str, *, installer: str | None, locked: bool, bundle: Path | None = None) -> int:
    """``hostel build``."""
    plan = load_plan(config)
    err = Console(stderr=True)
    envs = manager(plan, installer=installer, locked=locked, bundle=bundle)
    return report(await build_all(plan, envs, err), err)


async def lock(config: str, *, installer: str | None) -> int:
    """``hostel lock``: build every env (unlocked) and write the exact pins beside the config."""
    plan = load_plan(config)
    err = Console(stderr=True)
    results = await build_all(plan, manager(plan, installer=installer), err)
    code = report(results, err)
    if code:
        err.print("hostel: no lock written: fix the failed builds first")
        return code
    entries = {}
    uv_bin = uv.find_uv_bin()
    for r in results:
        assert r.spec is not None and r.path is not None
        pins = tuple(EnvManager.read_metadata(r.path)["resolved"])
        hashes = await artifact_hashes(
            uv_bin, pins, python_version=r.spec.python.version, provider_id=r.provider_id,
            pass_env=plan.settings.pass_env,
        )  # fmt: skip
        entries[r.provider_id] = LockedProvider(
            provider_id=r.provider_id,
            provider_type=plan.provider(r.provider_id).provider_type,
            python=r.spec.python.version,
            inputs=r.spec.inputs,
            pins=pins,
            hashes={pin: tuple(found) for pin, found in hashes.items()},
        )
    path = lock_path(plan.config)
    write_lock(path, entries)
    print(f"wrote {path} ({len(entries)} providers)")
    return 0


def envs_list() -> int:
    """``hostel envs list``."""
    manager_ = EnvManager()
    table = Table("key", "provider", "type", "python", "size", "last used", box=None, header_style="bold")
    for path, meta in iter_envs(manager_.home):
        table.add_row(
            str(meta.get("key", "?"))[:16],
            str(meta.get("provider_id", "?")),
            str(meta.get("provider_type", "?")),
            str(meta.get("spec", {}).get("python", {}).get("version", "?")),
            _human(dir_size(path)),
            _ago(_last_used(path)),
        )
    Console().print(table)
    return 0


def _last_used(path: Path) -> float:
    try:
        return (path / LAST_USED_FILE).stat().st_mtime
    except OSError:
        return path.stat().st_mtime


def _ago(when: float) -> str:
    seconds = max(0.0, time.time() - when)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return "just now"


async def envs_prune(configs: Sequence[str], *, older_than_days: float | None, dry_run: bool) -> int:
    """``hostel envs prune``: remove envs no given config uses and/or unused for N days."""
    envs = EnvManager()
    keep: set[str] = set()
    for config in configs:
        plan = load_plan(config)
        lock_file = lock_path(plan.config)
        managers = [envs] + ([manager(plan, locked=True)] if lock_file.exists() else [])
        for m in managers:
            for provider in plan.providers:
                try:
                    keep.add((await m.describe(provider)).key)
                except HostelError:
                    continue  # a provider whose env cannot even be described keeps nothing alive
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    removed = 0
    for path, meta in list(iter_envs(envs.home)):
        if configs and meta.get("key") in keep:
            continue
        if cutoff is not None and _last_used(path) > cutoff:
            continue
        print(f"{'would remove' if dry_run else 'removing'} {path} ({meta.get('provider_id', '?')})")
        removed += 1
        if not dry_run:
            await envs.remove(path)
    print(f"{removed} env(s) {'to remove' if dry_run else 'removed'}")
    for path in envs.unused_local_wheels():
        print(f"{'would remove' if dry_run else 'removing'} {path} (a local provider's wheel no env uses)")
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
    return 0
