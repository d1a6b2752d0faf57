"""``get_adapter_impl``: what a Llama Stack (or OGX) server calls to build a bridged provider (``hostel.bridge``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from hostel.bridge import _shared, mirror
from hostel.bridge._deps import ServerApis
from hostel.bridge._impl import Bridge, bridge_class
from hostel.bridge._loop import LoopThread, ServingLoop, serving_loop_here
from hostel.bridge._server import Server, as_json, current
from hostel.bridge._shared import BridgedHost, bridge_plan, show_hostel_logs
from hostel.bridge.config import BridgeConfig, BridgeOptions, provider_id_for
from hostel.config.plan import Plan
from hostel.errors import ConfigError, HostelError, ProviderUnavailableError
from hostel.host import Host
from hostel.supervise.status import ProviderStatus

logger = logging.getLogger(__name__)


def _real_provider(config: Any, server: Server) -> tuple[str, str, BridgeOptions, dict[str, Any]]:
    """``(api, provider type, options, hostel run config)`` of a bridge config: a ``remote::hostel-<api>`` entry's,
    or one naming the server's own provider by its type (``hostel.bridge.mirror``), whose env gets the server's
    distribution and, unless told otherwise, the server's Python."""
    bridged = mirror.bridged_type(config)
    if bridged is None:
        assert isinstance(config, BridgeConfig)
        provider_id = config.provider_id or provider_id_for(config.provider_type)
        return config.api, config.provider_type, config, config.run_config(provider_id)
    api, provider_type = bridged
    options: BridgeOptions = config.hostel
    own = as_json(config.model_dump(by_alias=True, exclude={"hostel"}))
    raw = options.hostel_run_config(
        api, options.provider_id or provider_id_for(provider_type), provider_type, own, module=server.requirement()
    )
    entry = raw["providers"][api][0]
    entry.setdefault("python", f"{sys.version_info.major}.{sys.version_info.minor}")
    return api, provider_type, options, raw


def _pass_env(entry: dict[str, Any], names: list[str]) -> None:
    """Give the worker ``names`` from the server's environment, besides what the entry's ``env`` gives it."""
    if not names:
        return
    env = entry.get("env")
    if isinstance(env, dict):
        entry["env"] = {**dict.fromkeys(names), **env}
    else:
        listed = env or []
        entry["env"] = [*listed, *(name for name in names if name not in listed)]


async def get_adapter_impl(config: Any, deps: dict[Any, Any], policy: list[Any] | None = None) -> Bridge:
    """Build the real provider's env, start its worker, and return the server's object for it.

    ``config``: a ``BridgeConfig`` (``remote::hostel-<api>``) or a config made by ``hostel.bridge.mirror`` (the
    server's own provider, by its type). The worker gets the server's storage backends and ``policy``.
    A config that does not validate always fails the server's start. A provider that cannot start fails
    it too unless ``required: false``; then the server comes up and the provider's calls fail with 503.
    In a server with several processes (``workers: N``), they share one worker of it (``hostel.bridge.hub``)
    unless ``shared_host: false``.
    """
    show_hostel_logs()
    server = current()
    api, provider_type, options, raw = _real_provider(config, server)
    provider_id = raw["providers"][api][0]["provider_id"]
    storage = server.storage()
    if storage is not None:
        raw["storage"] = storage
    _pass_env(raw["providers"][api][0], server.test_settings())
    shared, key_prefix = _shared.sharing(options.shared_host)
    bridges: list[Bridge] = []
    external = ServerApis(
        deps,
        lambda: bridges[0] if bridges else None,
        server.provider_data_var(),
        asyncio.get_running_loop(),
        key_prefix=key_prefix,
    )
    rules = [as_json(rule) for rule in policy or ()]
    try:
        plan = bridge_plan(raw, external.apis, rules, external.methods())
    except ConfigError as exc:
        logger.error("hostel bridge for %s: %s", api, exc)
        raise
    thread = ServingLoop() if serving_loop_here() else LoopThread(f"hostel-{provider_id}")
    start_error: HostelError | None = None
    logger.info(
        "hostel: starting %s (%s) for the %s API in its own venv and process (%s %s server)%s",
        provider_id, provider_type, api, server.name, server.version,
        ", shared by the server's processes" if shared else "",
    )  # fmt: skip
    host: BridgedHost = _Unstarted(provider_id, api, provider_type)
    try:
        host = await thread.run(lambda: _start(plan, raw, rules, options.home, external, shared=shared))
    except HostelError as exc:
        logger.error("hostel: provider %s (%s) did not start: %s", provider_id, provider_type, exc)
        if options.required:
            thread.close()
            raise
        start_error = exc
    except BaseException:
        thread.close()
        raise
    else:
        status = host.status()[0]
        logger.info("hostel: provider %s ready [pid %s, env %s]", provider_id, status.pid, status.env_path)
    bridge = bridge_class(server, api)(
        server=server,
        api=api,
        host=host,
        thread=thread,
        provider_id=provider_id,
        server_apis=external,
        start_error=start_error,
    )
    bridges.append(bridge)
    return bridge


async def _start(
    plan: Plan, raw: dict[str, Any], rules: list[Any], home: str | None, external: ServerApis, *, shared: bool
) -> BridgedHost:
    """The provider's host, started: this process's own, or the hub the server's processes share."""
    provider = plan.providers[0]
    if shared:
        request = _shared.HubRequest(
            provider.api, provider.provider_id, raw, home, rules, external, plan.settings.max_message_mb * 2**20,
            methods=_shared.method_names(provider.api), key=_shared.server_key(),
        )  # fmt: skip
        return await _shared.attach(request)
    host = Host(plan, home=Path(home) if home else None, external=external)
    try:
        await host.start()
    except BaseException:
        await host.stop()
        raise
    return host


class _Unstarted:
    """The host of a provider that did not start (``required: false``): its calls fail before they get here."""

    def __init__(self, provider_id: str, api: str, provider_type: str) -> None:
        self._status = ProviderStatus(provider_id, api, provider_type, "failed", None, 0, "did not start", None)

    async def call(
        self, provider_id: str, method: str, args: Any, kwargs: Any, *, timeout: float | None, provider_data: Any
    ) -> Any:
        raise ProviderUnavailableError(f"provider {provider_id!r} did not start", provider_id=provider_id)

    def status(self) -> list[ProviderStatus]:
        return [self._status]

    async def stop(self) -> None:
        pass
