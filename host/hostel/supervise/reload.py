"""Reloading a running host: apply what changed in its run config without a restart (docs/lifecycle.md).

Added providers get their envs and workers; removed ones refuse new calls at once and stop once their calls
finished; changed ones are replaced rolling (the new env is built and the new worker started and checked
while the old one serves, then calls switch and the old one drains); providers whose worker does not
depend on what changed (call limits, restart policy, start mode) take it in place; the rest is untouched.
A provider whose new version cannot be built or started keeps its old one, and the report says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hostel.config.diff import PlanDiff, diff_plans
from hostel.config.order import starts_with_host
from hostel.config.plan import Plan, ProviderPlan, adopt_declared_spec
from hostel.envs import Env
from hostel.errors import ConfigError, EnvBuildError, HostelError, ProviderStartError

if TYPE_CHECKING:
    from hostel.supervise.provider import Provider
    from hostel.supervise.supervisor import Supervisor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadReport:
    """What a reload did, provider by provider."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # refusing new calls; stopped once their calls finished
    replaced: tuple[str, ...] = ()  # now served by a new worker
    updated: tuple[str, ...] = ()  # took new call limits, restart policy or start mode; same worker
    unchanged: tuple[str, ...] = ()
    failed: Mapping[str, str] = dataclasses.field(default_factory=dict)  # id -> "stage: why"; the old one serves
    models_changed: bool = False
    needs_restart: tuple[str, ...] = ()  # settings that changed but apply only when the host restarts
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether everything the new config asks for was applied."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with ``ok``)."""
        return {**dataclasses.asdict(self), "failed": dict(self.failed), "ok": self.ok}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReloadReport:
        """The report ``to_dict`` made (what ``POST /v1/hostel/reload`` answers)."""
        ids = {name: tuple(data.get(name, ())) for name in ("added", "removed", "replaced", "updated", "unchanged")}
        return cls(
            **ids,
            failed=dict(data.get("failed", {})),
            models_changed=bool(data.get("models_changed")),
            needs_restart=tuple(data.get("needs_restart", ())),
            seconds=float(data.get("seconds", 0.0)),
        )

    def summary(self) -> str:
        """One line per kind of change, for logs and the CLI."""
        lines = [
            f"{label}: {', '.join(ids)}"
            for label, ids in (
                ("added", self.added), ("removed", self.removed), ("replaced", self.replaced),
                ("updated in place", self.updated), ("unchanged", self.unchanged),
            )
            if ids
        ]  # fmt: skip
        lines += [f"failed {pid} (its old worker, if any, still serves): {why}" for pid, why in self.failed.items()]
        if self.models_changed:
            lines.append("models table: updated")
        if self.needs_restart:
            lines.append(f"not applied until the host restarts: {', '.join(self.needs_restart)}")
        return "\n".join(lines) or "nothing changed"


def _why(exc: HostelError) -> str:
    stage = exc.stage if isinstance(exc, (ProviderStartError, EnvBuildError)) else "config"
    return f"{stage}: {exc.message}"


async def apply_reload(supervisor: Supervisor, old: Plan, new: Plan) -> tuple[ReloadReport, Plan]:
    """Make ``supervisor`` (running ``old``) run ``new``; the report, and the plan the host now runs (``new``, but
    with the old entries of providers whose change failed)."""
    began = time.monotonic()
    diff = diff_plans(old, new)
    wanted = {p.provider_id: p for p in new.providers}
    failed: dict[str, str] = {}
    replace = set(diff.replaced) | await _sources_changed(supervisor, diff, wanted, failed)
    for provider_id in diff.removed:
        supervisor.remove(provider_id)
    for provider_id, fields in diff.updated.items():
        if provider_id not in replace and provider_id not in failed:
            provider = supervisor.providers[provider_id]
            provider.update_policy(
                provider.plan.with_policy(**{f: getattr(wanted[provider_id].policy, f) for f in fields})
            )
    for provider_id in diff.added:
        supervisor.add(wanted[provider_id])

    prepared = await _prepare(
        supervisor, [wanted[i] for i in (*diff.added, *sorted(replace)) if i not in failed], failed
    )
    ordered = _order(supervisor, new, prepared, failed)
    for provider_id in diff.added:
        if provider_id in failed:
            supervisor.providers[provider_id].fail(failed[provider_id])
    supervisor.limit_running(new.settings.max_running)

    eager = set(starts_with_host(ordered))

    async def bring_up(provider: Provider) -> None:
        plan, env = prepared[provider.provider_id]
        try:
            if provider.provider_id in diff.added:
                provider.prepared(plan, env)
                if provider.provider_id in eager:
                    await provider.start_added()
                else:
                    provider.idle()
            else:
                await provider.replace(plan, env)
        except HostelError as exc:
            failed[provider.provider_id] = _why(exc)

    await supervisor.start_in_order([p.provider_id for p in ordered if p.provider_id in prepared], bring_up)
    for provider_id, plan in wanted.items():  # replicas added or removed (docs/supervision.md)
        member = supervisor.providers.get(provider_id)
        if member is not None and provider_id not in failed and len(member.members) != plan.policy.replicas:
            try:
                await member.resize(plan.policy.replicas)
            except HostelError as exc:
                failed[provider_id] = _why(exc)

    old_ids = {p.provider_id: p for p in old.providers}
    declared = tuple(
        old_ids[p.provider_id] if p.provider_id in failed and p.provider_id in old_ids else wanted[p.provider_id]
        for p in ordered
    )
    report = ReloadReport(
        added=tuple(i for i in diff.added if i not in failed),
        removed=diff.removed,
        replaced=tuple(i for i in wanted if i in replace and i not in failed),
        updated=tuple(i for i in diff.updated if i not in replace and i not in failed),
        unchanged=tuple(i for i in diff.unchanged if i not in replace and i not in failed),
        failed=failed,
        models_changed=diff.models_changed,
        needs_restart=diff.needs_restart,
        seconds=time.monotonic() - began,
    )
    return report, dataclasses.replace(new, providers=declared)


async def _sources_changed(
    supervisor: Supervisor, diff: PlanDiff, wanted: Mapping[str, ProviderPlan], failed: dict[str, str]
) -> set[str]:
    """The providers whose entry is the same but whose env is not: their local sources changed."""
    changed = set()
    for provider_id in (*diff.unchanged, *diff.updated):
        env = supervisor.providers[provider_id].env
        if env is None or not wanted[provider_id].builds_env:
            continue
        try:
            spec = await supervisor.context.envs.describe(wanted[provider_id])
        except HostelError as exc:
            failed[provider_id] = _why(exc)
            continue
        if spec.key != env.key:
            changed.add(provider_id)
    return changed


async def _prepare(
    supervisor: Supervisor, plans: list[ProviderPlan], failed: dict[str, str]
) -> dict[str, tuple[ProviderPlan, Env | None]]:
    """Build (or reuse) the env of each new or changed provider while the old ones serve; a ``module:``
    provider's plan takes the spec its package declares."""
    prepared: dict[str, tuple[ProviderPlan, Env | None]] = {}

    async def one(plan: ProviderPlan) -> None:
        try:
            env = await supervisor.providers[plan.provider_id].env_for(plan)
        except HostelError as exc:
            failed[plan.provider_id] = _why(exc)
            return
        plan = adopt_declared_spec(plan, env.metadata if env is not None else None) or plan
        prepared[plan.provider_id] = (plan, env)

    await asyncio.gather(*(one(plan) for plan in plans))
    return prepared


def _order(
    supervisor: Supervisor, new: Plan, prepared: dict[str, tuple[ProviderPlan, Env | None]], failed: dict[str, str]
) -> list[ProviderPlan]:
    """The providers in start order (the set re-ordered to match), the prepared plans with the dependencies
    they now have; if their declared specs need an API nobody serves, they fail and the set is ordered without."""
    ids = [p.provider_id for p in new.providers]
    pending = {provider_id: plan for provider_id, (plan, _env) in prepared.items()}
    try:
        ordered = supervisor.order(new.config.label, ids, pending)
    except ConfigError as exc:
        for provider_id in list(prepared):
            failed[provider_id] = f"config: {exc}"
            del prepared[provider_id]
        ordered = supervisor.order(new.config.label, ids)
    for plan in ordered:
        if plan.provider_id in prepared:
            prepared[plan.provider_id] = (plan, prepared[plan.provider_id][1])
    return ordered
