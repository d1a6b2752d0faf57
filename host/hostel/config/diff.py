"""What changed between two plans of the same host, for a reload: pure comparison, no I/O.

A provider's plan is in parts: what its worker is made from (``WorkerRecipe``: config, secrets, packages,
Python, module, launcher, sandbox ...), whose change needs a new worker, and the host's policy for it
(``ProviderPolicy``: call limits, restart policy, start mode, idle time, which provider ids serve its
dependencies), which a running worker takes as it is. Settings that only a host restart applies are named,
never silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hostel.config.plan import Plan, ProviderPlan

# hostel: settings a reload applies: through each provider's plan, or live.
_RELOADED_SETTINGS = frozenset(
    {"restart", "pass_env", "sandbox", "launcher", "retain_freed_mb", "start", "idle_stop_s", "max_running", "zygote"}
)


@dataclass(frozen=True)
class PlanDiff:
    """How a new plan differs from the running one, provider by provider."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # id -> worker fields changed
    updated: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # id -> policy fields changed
    unchanged: tuple[str, ...] = ()
    models_changed: bool = False
    needs_restart: tuple[str, ...] = ()  # settings that changed but only a host restart applies


def _changed(old: Any, new: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(new) if getattr(old, f.name) != getattr(new, f.name))


def provider_changes(old: ProviderPlan, new: ProviderPlan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields that differ: those its worker is made from (its API among them), and the policy ones."""
    api = ("api",) if old.api != new.api else ()
    return api + _changed(old.worker, new.worker), _changed(old.policy, new.policy)


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    """Compare the plan a host runs with the plan of its re-read config."""
    old_ids = {p.provider_id: p for p in old.providers}
    new_ids = {p.provider_id: p for p in new.providers}
    replaced: dict[str, tuple[str, ...]] = {}
    updated: dict[str, tuple[str, ...]] = {}
    unchanged: list[str] = []
    for provider_id, plan in new_ids.items():
        if provider_id not in old_ids:
            continue
        worker_fields, policy_fields = provider_changes(old_ids[provider_id], plan)
        if worker_fields:
            replaced[provider_id] = worker_fields
        elif policy_fields:
            updated[provider_id] = policy_fields
        else:
            unchanged.append(provider_id)
    old_config, new_config = old.config, new.config
    restart = [
        f"hostel.{name}"
        for name in type(new_config.hostel).model_fields
        if name not in _RELOADED_SETTINGS and getattr(old_config.hostel, name) != getattr(new_config.hostel, name)
    ]
    restart += [
        f"server.{name}"
        for name in type(new_config.server).model_fields
        if getattr(old_config.server, name) != getattr(new_config.server, name)
    ]
    return PlanDiff(
        added=tuple(i for i in new_ids if i not in old_ids),
        removed=tuple(i for i in old_ids if i not in new_ids),
        replaced=replaced,
        updated=updated,
        unchanged=tuple(unchanged),
        models_changed=(old_config.models, old_config.shields) != (new_config.models, new_config.shields),
        needs_restart=tuple(restart),
    )
