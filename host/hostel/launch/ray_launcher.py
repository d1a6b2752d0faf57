"""The Ray launcher: each provider's worker is started by a Ray actor, on whichever node Ray places it.

The actor runs in a Ray ``runtime_env`` made from the provider's pip packages (Ray builds, caches and
garbage-collects those envs per node), starts ``python -m hostel_sdk.worker`` there, and hands back the
worker's handshake. The worker listens on TCP on its node's IP; every call carries a per-worker token the
worker checks, and with ``hostel.ray.tls`` both directions are mutual TLS. Callbacks (``deps``, model and
shield stores) come back to a TCP listener of the host's callback service, with the worker's callback token.
A worker's exit is learnt from the actor (exit code and stderr tail), and a lost actor or node counts as a
crash, so supervision, restarts and errors are those of local workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The host owns its signals (SIGTERM/SIGINT stop it gracefully): Ray's driver would otherwise install absl's
# failure handler, which dumps a stack on SIGTERM and aborts the process. Read by Ray when it is imported.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

import ray
from ray.exceptions import RayError

from hostel.config import RaySettings, TlsSettings
from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.launch.base import ExitInfo, GrpcConnect, LaunchContext, WorkerBase, WorkerHandle
from hostel.launch.process import HandshakeProblem, judge_handshake, start_request
from hostel.launch.ray_actor import WorkerActor
from hostel_sdk._handshake import Handshake
from hostel_sdk._start import Listen

if TYPE_CHECKING:
    from hostel.launch.pki import Pki

logger = logging.getLogger(__name__)

# How long a kill may take to be reported before the actor itself is killed.
_KILL_WAIT_S = 10.0
# How long the cluster's address may take to accept a TCP connection before the start fails.
_PROBE_S = 5.0
# How often a start waiting for placement checks that some live node could hold the actor.
_PLACEMENT_CHECK_S = 1.0


def load_tls(settings: TlsSettings, base_dir: Path) -> dict[str, str]:
    """The PEM texts of ``hostel.ray.tls`` (paths relative to the run config's directory)."""
    files = {"cert": settings.cert_file, "key": settings.key_file, "ca": settings.ca_file}
    tls = {name: (base_dir / os.path.expanduser(str(path))).read_text() for name, path in files.items()}
    if settings.server_name:
        tls["server_name"] = settings.server_name
    return tls


def runtime_env(plan: ProviderPlan, settings: RaySettings) -> dict[str, Any]:
    """The actor's Ray ``runtime_env``: the provider's packages under ``uv`` (or ``pip``), installed with
    ``hostel.ray.install_options`` if given."""
    env: dict[str, Any] = {"env_vars": {"PYTHONUNBUFFERED": "1"}}
    if plan.worker.pip_packages:
        env[settings.installer] = {"packages": list(plan.worker.pip_packages)}
        if settings.install_options is not None:
            key = "uv_pip_install_options" if settings.installer == "uv" else "pip_install_options"
            env[settings.installer][key] = list(settings.install_options)
    return env


def placement(plan: ProviderPlan, settings: RaySettings) -> dict[str, Any]:
    """The actor's placement options: the provider entry's ``ray:`` block over ``hostel.ray``'s defaults; its
    replicas spread across nodes unless it says otherwise."""
    own = dict(plan.worker.placement or {})
    options: dict[str, Any] = {
        "num_cpus": own.get("num_cpus", settings.num_cpus),
        "resources": own.get("resources", settings.resources) or None,
    }
    if own.get("num_gpus") is not None:
        options["num_gpus"] = own["num_gpus"]
    if own.get("node_id"):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=own["node_id"], soft=own["soft"])
    elif own.get("strategy", "SPREAD" if plan.policy.replicas > 1 else None):
        options["scheduling_strategy"] = own.get("strategy", "SPREAD")
    return options


def unplaceable(options: dict[str, Any], nodes: list[dict[str, Any]]) -> str | None:
    """What an actor with placement ``options`` waits for, if no live node in ``nodes`` (``ray.nodes()``) has
    the resources it asks for at all (a busy node will free them; a missing one may never come), else ``None``."""
    wanted = {"CPU": options.get("num_cpus") or 0, "GPU": options.get("num_gpus") or 0,
              **(options.get("resources") or {})}  # fmt: skip
    wanted = {name: int(amount) if float(amount).is_integer() else amount for name, amount in wanted.items() if amount}
    strategy = options.get("scheduling_strategy")
    node_id = getattr(strategy, "node_id", None)
    soft = getattr(strategy, "soft", False)
    alive = [node for node in nodes if node.get("Alive")]
    if node_id and not soft:
        alive = [node for node in alive if node.get("NodeID") == node_id]
        if not alive:
            return f"the Ray node {node_id} (it is not in the cluster)"
    if any(all(node.get("Resources", {}).get(k, 0) >= v for k, v in wanted.items()) for node in alive):
        return None
    return f"a Ray node with {wanted} (no live node of the cluster has them)"


async def _reachable(address: str | None) -> None:
    """Fail fast (``ConnectionError``) if a ``host:port`` / ``ray://host:port`` address does not answer at all:
    ``ray.init`` would retry for minutes, blocking the host's loop."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), _PROBE_S)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"nothing answers there ({exc or 'timed out'}); start the cluster (`ray start --head`) "
            "or fix hostel.ray.address / --ray"
        ) from None
    writer.close()


def _readable(error: BaseException) -> str:
    """Ray's error text without the Python tracebacks of its own agents (the installer's output stays)."""
    kept: list[str] = []
    in_traceback = False
    for line in str(error).splitlines():
        head, marker, _ = line.partition("Traceback (most recent call last):")
        if marker:
            in_traceback = True
            if head.strip():
                kept.append(head.strip())
            continue
        if in_traceback and (line.startswith(" ") or not line.strip()):
            continue
        in_traceback = False
        kept.append(line)
    return "\n".join(kept)


async def _get(ref: Any, timeout: float | None = None) -> Any:
    return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)


class RayWorker(WorkerBase):
    """A worker started by a Ray actor; reached over TCP."""

    def __init__(self, plan: ProviderPlan, launcher: RayLauncher, generation: int) -> None:
        self.plan = plan
        self.token = ""
        self.kill_reason: str | None = None
        self.server_token: str | None = secrets.token_urlsafe(32)
        # With the host's own CA: this worker's name, checked when the host calls it (set at start).
        self._tls_name = f"hostel-worker-{secrets.token_hex(8)}"
        self.tls = launcher.tls_to(self._tls_name)
        self._launcher = launcher
        self._name = f"hostel-{plan.provider_id}-{os.getpid()}-{generation}-{plan.replica}"
        self._actor: Any = None
        self._pid: int | None = None
        self._stderr = ""
        self._exit: asyncio.Future[ExitInfo] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The worker's pid on its node, once it has shaken hands."""
        return self._pid

    @property
    def exit_info(self) -> ExitInfo | None:
        """How the worker ended, once it has."""
        return self._exit.result() if self._exit is not None and self._exit.done() else None

    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines of the worker's stderr, as the actor last reported them."""
        return "\n".join(self._stderr.splitlines()[-lines:])

    def rss_bytes(self) -> int | None:
        """Not visible from the host: the actor enforces ``limits.memory_mb`` on the worker's node."""
        return None

    async def dump_stacks(self) -> str:
        """The worker's threads' stacks, as its actor collects them on its node."""
        if self._actor is None or self.exit_info is not None:
            return ""
        try:
            return str(await _get(self._actor.dump_stacks.remote(), 5.0))
        except (RayError, TimeoutError):
            return ""

    async def spawn(self) -> None:
        """Nothing ahead of time: the actor is made by ``start``."""

    async def start(self, timeout: float, *, token: str = "") -> Handshake:
        """Make the actor (Ray builds its runtime_env), start the worker on its node with its callback ``token``,
        read the handshake."""
        self.token = token
        launcher = self._launcher
        settings = launcher.settings
        try:
            await launcher.join()
        except (RayError, ConnectionError, RuntimeError, ValueError) as exc:
            where = settings.ray.address or "a new local instance"
            raise self._start_error(f"cannot connect to Ray at {where}: {exc}", "import") from None
        self._exit = asyncio.get_running_loop().create_future()
        self._actor = launcher.actor_class.options(
            name=self._name,
            runtime_env=runtime_env(self.plan, settings.ray),
            **placement(self.plan, settings.ray),
            max_restarts=0,
            max_concurrency=8,
        ).remote()
        try:
            node = await self._placed(settings.build_timeout_s)
        except TimeoutError:
            await self.close()
            raise self._start_error(
                f"Ray did not place the actor and build its runtime_env within build_timeout_s="
                f"{settings.build_timeout_s:g}s (are there nodes with the resources asked for?)",
                "timeout",
            ) from None
        except RayError as exc:
            await self.close()
            raise self._start_error(f"Ray could not set up the worker's actor: {_readable(exc)}", "import") from None
        request = dataclasses.replace(
            start_request(
                self.plan,
                token=self.token,
                log_level=launcher.context.log_level,
                max_message_bytes=settings.max_message_mb * 2**20,
                grace_s=settings.stop_grace_s,
            ),
            host_pid=None,  # the worker's parent is the actor: it watches its stdin instead
            host_target=launcher.host_target,
            listen=Listen(host=node, advertise=node),
            server_token=self.server_token,
            tls=launcher.worker_tls(self._tls_name),
        )
        line_ref = self._actor.start.remote(request.to_json() + b"\n", self.plan.worker.memory_mb)
        try:
            line = await _get(line_ref, timeout)
        except TimeoutError:
            await self.kill()
            await self.close()
            raise self._start_error(f"no handshake within start_timeout_s={timeout:g}s", "timeout") from None
        except RayError as exc:
            await self.close()
            raise self._start_error(f"the worker's Ray actor died: {exc}", "handshake") from None
        self._watcher = asyncio.create_task(self._watch())
        return await self._handshake(line)

    async def _placed(self, timeout: float) -> str:
        """The node the actor runs on once Ray has placed it and built its runtime_env; meanwhile
        ``waiting_for`` says so whenever no live node of the cluster could ever hold it."""
        placed = asyncio.ensure_future(_get(self._actor.node.remote(), timeout))
        wanted = placement(self.plan, self._launcher.settings.ray)
        try:
            while not placed.done():
                try:
                    nodes = await asyncio.to_thread(ray.nodes)
                except Exception:  # noqa: BLE001 - the cluster's state is unreadable now: claim nothing
                    nodes = None
                self.waiting_for = unplaceable(wanted, nodes) if nodes is not None else None
                await asyncio.wait({placed}, timeout=_PLACEMENT_CHECK_S)
        finally:
            self.waiting_for = None
            if not placed.done():
                placed.cancel()
        return str(placed.result())

    async def _handshake(self, line: str) -> Handshake:
        if not line:
            info = await self.wait()
            await self.close()
            raise self._start_error(f"the worker {info} before its handshake", "handshake")
        result = judge_handshake(line, "install the host's hostel version on the Ray nodes")
        if isinstance(result, HandshakeProblem):
            await (self.wait() if result.worker_exits else self.kill())
            await self.close()
            raise self._start_error(result.message, result.stage)
        self._pid = result.pid
        logger.info("started provider %s on Ray [%s pid %d]", self.plan.provider_id, result.address, result.pid)
        return result

    async def _watch(self) -> None:
        try:
            returncode, self._stderr, reason = await _get(self._actor.wait.remote())
            info = ExitInfo.from_returncode(returncode)
            self.kill_reason = self.kill_reason or reason
        except RayError as exc:
            info = ExitInfo(None, None)
            self.kill_reason = self.kill_reason or f"its Ray actor was lost ({str(exc).splitlines()[0]})"
        assert self._exit is not None
        if not self._exit.done():
            self._exit.set_result(info)

    async def wait(self) -> ExitInfo:
        """Wait for the worker to end."""
        assert self._exit is not None, "worker not started"
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())
        return await asyncio.shield(self._exit)

    def signal(self, sig: int) -> None:
        """Ask the actor to send ``sig`` to the worker (without waiting)."""
        if self._actor is not None and self.exit_info is None:
            self._actor.signal.remote(int(sig))

    async def kill(self) -> ExitInfo | None:
        """SIGKILL the worker; kill its actor if that is not reported soon."""
        if self._actor is None or self._exit is None:
            return None
        self.signal(signal.SIGKILL)
        try:
            return await asyncio.wait_for(self.wait(), _KILL_WAIT_S)
        except TimeoutError:
            ray.kill(self._actor, no_restart=True)
            return await self.wait()

    def _running(self) -> bool:
        return self._actor is not None

    async def close(self) -> None:
        """Kill the actor (its worker, if any is left, dies with it)."""
        actor, self._actor = self._actor, None
        if actor is not None:
            ray.kill(actor, no_restart=True)
        if self._watcher is not None and self._exit is not None and not self._exit.done():
            self._exit.set_result(ExitInfo(None, signal.SIGKILL))
        if self._watcher is not None:
            self._watcher.cancel()


class RayLauncher(GrpcConnect):
    """Connects to (or starts) Ray on first use; opens the host's TCP callback listener."""

    uses_env = False

    def __init__(self, context: LaunchContext) -> None:
        self.context = context
        self.settings = context.settings
        self.max_message_bytes = context.settings.max_message_mb * 2**20
        ray_settings = self.settings.ray
        tls = ray_settings.tls
        self._pki: Pki | None = None
        self.tls: dict[str, str] | None
        if tls is True:
            from hostel.launch.pki import HOST_NAME, Pki  # cryptography loads only when it is used

            self._pki = Pki()
            self.tls = self._pki.identity(HOST_NAME, peer="")
        else:
            self.tls = load_tls(tls, context.base_dir) if isinstance(tls, TlsSettings) else None
        self.actor_class: Any = ray.remote(WorkerActor)
        self.host_target: str | None = None
        self._started_ray = False
        self._connecting: asyncio.Task[None] | None = None

    def tls_to(self, worker_name: str) -> dict[str, str] | None:
        """How the host dials a worker: its own identity, checking the worker's name (the host's CA), or the
        shared identity of ``hostel.ray.tls`` files."""
        if self.tls is None or self._pki is None:
            return self.tls
        return {**self.tls, "server_name": worker_name}

    def worker_tls(self, worker_name: str) -> dict[str, str] | None:
        """The identity a worker gets in its start request: its own certificate (the host's CA), or the shared one."""
        if self._pki is None:
            return self.tls
        from hostel.launch.pki import HOST_NAME

        return self._pki.identity(worker_name, peer=HOST_NAME)

    def new_worker(self, plan: ProviderPlan, env: Env | None, generation: int) -> WorkerHandle:
        """A ``RayWorker``; Ray is joined before its first start."""
        return RayWorker(plan, self, generation)

    async def join(self) -> None:
        """``ray.init`` once (to ``hostel.ray.address``, or a new local Ray), and listen for callbacks on TCP."""
        if self._connecting is None or (self._connecting.done() and self._connecting.exception()):
            self._connecting = asyncio.create_task(self._connect())  # a failed attempt is tried again
        await asyncio.shield(self._connecting)

    async def _connect(self) -> None:
        settings = self.settings.ray
        if not ray.is_initialized():
            await _reachable(settings.address)
            # ray.init replaces SIGTERM's handler with sys.exit; the host stops gracefully on SIGTERM instead.
            previous = signal.getsignal(signal.SIGTERM)
            ray.init(
                address=settings.address,
                namespace=settings.namespace,
                include_dashboard=False,
                log_to_driver=True,
                configure_logging=False,
            )
            if previous is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
            self._started_ray = True
        callbacks = self.context.callbacks
        if callbacks is not None:
            host = settings.callback_host or str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
            self.host_target = await callbacks.listen_tcp(host, self.tls)  # the host's own identity

    async def close(self) -> None:
        """Disconnect from Ray if this launcher connected (a local Ray it started stops with it)."""
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
        self._connecting = None
