"""Drop-in isolation for a Llama Stack (or OGX) server: a provider whose implementation is a hostel worker.

In the server's run config::

    providers:
      inference:
      - provider_id: ramalama
        provider_type: remote::hostel-inference
        module: hostel
        config:
          provider_type: remote::ramalama
          module: ramalama_stack==0.3.0
          config: {url: http://localhost:8080}

The server imports ``hostel.provider`` (``get_provider_spec``), then calls ``get_adapter_impl`` here.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from hostel.bridge._deps import ServerApis
from hostel.bridge._impl import Bridge, bridge_class
from hostel.bridge._loop import LoopThread
from hostel.bridge._server import current
from hostel.bridge.config import BridgeConfig, provider_id_for
from hostel.config.plan import load_plan
from hostel.errors import ConfigError, HostelError
from hostel.host import Host

__all__ = ["Bridge", "BridgeConfig", "get_adapter_impl"]

logger = logging.getLogger(__name__)


async def get_adapter_impl(config: BridgeConfig, deps: dict[Any, Any]) -> Bridge:
    """Build the real provider's env, start its worker, and return the server's object for it.

    A config that does not validate always fails the server's start. A provider that cannot start fails
    it too unless ``required: false``; then the server comes up and the provider's calls fail with 503.
    """
    _show_hostel_logs()
    server = current()
    api = config.api
    provider_id = config.provider_id or provider_id_for(config.provider_type)
    bridges: list[Bridge] = []
    external = ServerApis(
        deps, lambda: bridges[0] if bridges else None, server.provider_data_var(), asyncio.get_running_loop()
    )
    try:
        plan = load_plan(config.run_config(provider_id), external_apis=external.apis)
    except ConfigError as exc:
        logger.error("hostel bridge for %s: %s", api, exc)
        raise
    thread = LoopThread(f"hostel-{provider_id}")

    async def make_host() -> Host:
        return Host(plan, home=Path(config.home) if config.home else None, external=external)

    host = await thread.run(make_host)
    start_error: HostelError | None = None
    logger.info(
        "hostel: starting %s (%s) for the %s API in its own venv and process (%s %s server)",
        provider_id, config.provider_type, api, server.name, server.version,
    )  # fmt: skip
    try:
        await thread.run(host.start)
    except HostelError as exc:
        await thread.run(host.stop)
        logger.error("hostel: provider %s (%s) did not start: %s", provider_id, config.provider_type, exc)
        if config.required:
            thread.close()
            raise
        start_error = exc
    except BaseException:
        await thread.run(host.stop)
        thread.close()
        raise
    else:
        status = host.status()[0]
        logger.info("hostel: provider %s ready [pid %s, env %s]", provider_id, status.pid, status.env_path)
    bridge = bridge_class(server, api)(
        server=server, api=api, host=host, thread=thread, provider_id=provider_id, start_error=start_error
    )
    bridges.append(bridge)
    return bridge


def _show_hostel_logs() -> None:
    """Make hostel's progress (env builds, starts, restarts, provider stderr) reach the server's log."""
    hostel_logger = logging.getLogger("hostel")
    if hostel_logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    hostel_logger.addHandler(handler)
    hostel_logger.setLevel(logging.INFO)
    hostel_logger.propagate = False
