"""The providers in start order: each provider's API dependencies resolved to the providers that serve them,
dependencies first, optional ones never making a cycle; and which providers start with the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hostel.errors import ConfigError, Problem

if TYPE_CHECKING:
    from hostel.config.plan import ProviderPlan
    from hostel.config.schema import RunConfig


def order_plans(
    label: str, plans: Sequence[ProviderPlan], external_apis: frozenset[str] = frozenset()
) -> list[ProviderPlan]:
    """Resolve API dependencies to provider ids and sort so dependencies come first; ``ConfigError`` if impossible.

    Run again once the specs of ``module:`` providers are known (they come from inside their envs).
    """
    problems: list[Problem] = []
    ordered = resolve_order(label, list(plans), problems, external_apis)
    if problems:
        raise ConfigError(problems)
    return ordered


# Routing tables the host serves itself when no provider is configured for them (hostel.resources).
HOST_TABLE_APIS = ("benchmarks", "datasets", "scoring_functions", "shields")


def resolve_order(
    label: str, plans: list[ProviderPlan], problems: list[Problem], external_apis: frozenset[str] = frozenset()
) -> list[ProviderPlan]:
    """Resolve API dependencies to provider ids and sort providers so dependencies start first."""
    by_api: dict[str, list[str]] = {api: [] for api in (*external_apis, *HOST_TABLE_APIS)}
    for plan in plans:
        by_api.setdefault(plan.api, []).append(plan.provider_id)
    resolved: dict[str, ProviderPlan] = {}
    for plan in plans:
        deps: list[str] = []
        optional: list[str] = []
        for api in plan.spec.api_dependencies:
            if api not in by_api:
                problems.append(
                    Problem(
                        label,
                        f"providers.{plan.api}[{plan.provider_id}]",
                        f"needs API {api!r} (api_dependencies of {plan.provider_type}) but no provider serves it; "
                        f"add one under providers.{api}",
                    )
                )
            deps.extend(by_api.get(api, []))
        for api in plan.spec.optional_api_dependencies:
            optional.extend(by_api.get(api, []))
        pid = plan.provider_id
        served = [*plan.spec.api_dependencies, *(a for a in plan.spec.optional_api_dependencies if a in by_api)]
        resolved[pid] = plan.with_worker(dependency_apis=tuple(dict.fromkeys(served))).with_policy(
            dependencies=tuple(d for d in deps if d != pid),
            optional_dependencies=tuple(d for d in optional if d != pid and d not in deps),
        )
    ordered: list[ProviderPlan] = []
    state: dict[str, str] = {}

    def visit(pid: str, chain: list[str], optional: bool = False) -> None:
        if state.get(pid) == "done":
            return
        if state.get(pid) == "visiting":
            if optional:  # an optional dependency never makes a cycle: it is just not waited for
                return
            cycle = " -> ".join([*chain[chain.index(pid) :], pid])
            problems.append(Problem(label, "providers", f"API dependency cycle: {cycle}; remove one dependency"))
            return
        state[pid] = "visiting"
        for dep in resolved[pid].policy.dependencies:
            visit(dep, [*chain, pid])
        for dep in resolved[pid].policy.optional_dependencies:
            visit(dep, [*chain, pid], optional=True)
        state[pid] = "done"
        ordered.append(resolved[pid])

    for plan in plans:
        visit(plan.provider_id, [])
    return ordered


def check_max_running(config: RunConfig, plans: Sequence[ProviderPlan], problems: list[Problem]) -> None:
    """``hostel.max_running`` must leave room for every provider that starts with the host."""
    limit = config.hostel.max_running
    if limit is None:
        return
    eager = starts_with_host(plans)
    if len(eager) > limit:
        problems.append(
            Problem(
                config.label,
                "hostel.max_running",
                f"is {limit}, but {len(eager)} providers start with the host ({', '.join(eager)}: eager ones and "
                "what they depend on); raise it or make some `start: lazy`",
            )
        )


def starts_with_host(plans: Sequence[ProviderPlan]) -> list[str]:
    """The providers whose workers start with the host: eager ones, and every provider they depend on."""
    by_id = {p.provider_id: p for p in plans}
    wanted: set[str] = set()

    def add(provider_id: str) -> None:
        if provider_id in wanted or provider_id not in by_id:
            return
        wanted.add(provider_id)
        for dep in by_id[provider_id].policy.dependencies:
            add(dep)

    for plan in plans:
        if plan.policy.start == "eager":
            add(plan.provider_id)
    return [p.provider_id for p in plans if p.provider_id in wanted]
