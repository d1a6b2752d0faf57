"""A hostile provider beside a victim: what it cannot do to its neighbour, and what still works."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from hostel import ConfigError, Host, ProviderStartError
from hostel.config.plan import load_plan
from hostel.launch.process import ProcessLauncher
from hostel_sdk._sandbox import landlock_abi
from tests.conftest import REPO, chaos_spec, make_config, provider_spec

PTHPROV = REPO / "tests" / "providers" / "pthprov"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": chaos_spec()},
        providers={
            "inference": [{"provider_id": "victim", "provider_type": "inline::testprov"}],
            "tool_runtime": [{"provider_id": "evil", "provider_type": "inline::chaos"}],
        },
    )
    async with Host.from_config(config) as started:
        yield started


async def test_a_worker_cannot_call_or_stop_another_worker_through_its_socket(host: Host) -> None:
    victim = host.supervisor.providers["victim"].worker
    assert victim is not None
    socket = str(victim.socket_path)  # suppose the evil provider found it (same uid: it can list the directory)
    for method in ("Shutdown", "Describe", "CallUnary"):
        assert await host.provider("evil").poke_socket(path=socket, method=method) == "UNAUTHENTICATED"
    assert await host.provider("victim").greet(name="still") == "hello, still"
    assert host.supervisor.providers["victim"].worker is victim  # never restarted
    # Nor the host's callback service with a token of its own making: refused before the request is read.
    host_socket = str(host.callbacks.socket_path)
    assert await host.provider("evil").poke_host(path=host_socket, token="guess", junk_bytes=1 << 20) == (
        "UNAUTHENTICATED"
    )


async def test_a_worker_sees_only_the_minimal_environment_and_its_own_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VICTIM_KEY", "victim-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-host")
    monkeypatch.setenv("SHARED_SETTING", "for-all")
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": chaos_spec()},
        providers={
            "inference": [
                {
                    "provider_id": "victim",
                    "provider_type": "inline::testprov",
                    "config": {"greeting": "${env.VICTIM_KEY}"},
                },
            ],
            "tool_runtime": [
                {"provider_id": "evil", "provider_type": "inline::chaos", "env": {"OPENAI_API_KEY": None, "MODE": "x"}}
            ],
        },
        hostel={"pass_env": ["SHARED_SETTING"]},
    )
    async with Host.from_config(config) as host:
        seen = await host.provider("evil").environment()
        assert await host.provider("victim").greet(name="a") == "victim-secret, a"  # its secret came on stdin
    assert "VICTIM_KEY" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
    assert "victim-secret" not in seen.values()
    assert seen["OPENAI_API_KEY"] == "sk-host" and seen["MODE"] == "x" and seen["SHARED_SETTING"] == "for-all"
    assert seen["PATH"] == os.environ["PATH"] and seen["HOME"] == os.environ["HOME"]
    tmp = Path(seen["TMPDIR"])
    assert tmp.name == "tmp" and tmp.parent.name != "" and not tmp.exists()  # private, and gone with the worker


@pytest.mark.skipif(landlock_abi() < 6, reason="needs Landlock ABI 6 (Linux 6.12): TCP rules and signal scoping")
async def test_a_sandboxed_worker_cannot_reach_its_neighbours_files_signals_or_ports(tmp_path: Path) -> None:
    data = tmp_path / "evil-data"
    data.mkdir()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    allowed = await asyncio.start_server(serve, "127.0.0.1", 0)
    other = await asyncio.start_server(serve, "127.0.0.1", 0)
    ports = [s.sockets[0].getsockname()[1] for s in (allowed, other)]
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": chaos_spec()},
        providers={
            "inference": [{"provider_id": "victim", "provider_type": "inline::testprov"}],
            "tool_runtime": [
                {
                    "provider_id": "evil",
                    "provider_type": "inline::chaos",
                    "sandbox": {"writable": [str(data)], "network": {"connect": [f"127.0.0.1:{ports[0]}"]}},
                }
            ],
        },
    )
    async with allowed, other, Host.from_config(config) as host:
        evil = host.provider("evil")
        victim = host.supervisor.providers["victim"]
        assert victim.env is not None and victim.worker is not None and victim.worker.pid is not None
        # What it may do still works: its own files, its allowed port, its deps over the callback socket.
        assert await evil.write_file(path=str(data / "note"), text="mine") == "written"
        assert await evil.read_file(path=str(data / "note")) == "read: mine"
        assert await evil.connect(host="127.0.0.1", port=ports[0]) == "connected"
        assert (await evil.hammer(seconds=0.2, concurrency=1))["ok"] > 0
        # What it may not.
        assert (await evil.read_file(path=str(victim.env.path / "hostel-env.json"))).startswith("denied")
        assert (await evil.read_file(path=str(config))).startswith("denied")
        assert (await evil.list_dir(path=str(Path.home()))).startswith("denied")
        assert (await evil.list_dir(path=str(victim.worker.socket_path.parent.parent))).startswith("denied")
        assert (await evil.write_file(path=str(tmp_path / "planted"), text="x")).startswith("denied")
        assert (await evil.send_signal(pid=victim.worker.pid, sig=signal.SIGTERM)).startswith("denied")
        assert (await evil.connect(host="127.0.0.1", port=ports[1])).startswith("denied")
        assert await host.provider("victim").greet(name="unharmed") == "hello, unharmed"
        assert (await evil.rlimits())["core"] == [0, 0]  # a crash leaves no core file holding its secrets


async def test_limits_become_rlimits_and_a_sandbox_that_cannot_be_set_up_fails_the_start(tmp_path: Path) -> None:
    entry = {
        "provider_id": "evil",
        "provider_type": "inline::chaos",
        "limits": {"open_files": 256, "processes": 4096, "cpu_seconds": 3600},
    }
    specs = {"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": chaos_spec()}
    inference = [{"provider_id": "victim", "provider_type": "inline::testprov"}]
    config = make_config(tmp_path, specs=specs, providers={"inference": inference, "tool_runtime": [entry]})
    async with Host.from_config(config) as host:
        limits = await host.provider("evil").rlimits()
    assert {k: v for k, v in limits.items() if k != "core"} == {
        "open_files": [256, 256], "processes": [4096, 4096], "cpu": [3600, 3600]
    }  # fmt: skip
    missing = tmp_path / "not-there"
    broken = {**entry, "sandbox": {"writable": [str(missing)]}}
    config = make_config(tmp_path, specs=specs, providers={"inference": inference, "tool_runtime": [broken]})
    with pytest.raises(ProviderStartError) as exc:
        await Host.from_config(config).start()
    assert exc.value.stage == "config" and f"sandbox: cannot open {str(missing)!r}" in str(exc.value)


def test_the_sandbox_is_for_process_workers(tmp_path: Path) -> None:
    specs = {"inline/tool_runtime/boxed": {**provider_spec(), "container_image": "some:image", "pip_packages": []}}
    entry = {"provider_id": "b", "provider_type": "inline::boxed", "sandbox": True}
    with pytest.raises(ConfigError, match="the sandbox confines process workers; the container launcher"):
        load_plan(make_config(tmp_path, specs=specs, providers={"tool_runtime": [entry]}))


async def test_a_wheels_pth_code_runs_inside_the_sandbox_in_the_worker_and_in_the_import_check(tmp_path: Path) -> None:
    """hostel_pthprov's wheel ships a .pth file: site runs it at every interpreter start, before hostel's code.
    Unconfined (the control, so this test can fail) it reads its parent's environment and lists the other envs;
    sandboxed, it is already inside when it runs: in the worker, and in the build's import check."""
    spec = provider_spec(module="hostel_pthprov", config_class=None, provider_data_validator=None,
                         pip_packages=[str(PTHPROV)])  # fmt: skip
    entries = [
        {"provider_id": "boxed", "provider_type": "inline::pth", "sandbox": True},
        {"provider_id": "spawned", "provider_type": "inline::pth", "sandbox": True, "zygote": False},
        {"provider_id": "open", "provider_type": "inline::pth"},
    ]
    config = make_config(tmp_path, specs={"inline/tool_runtime/pth": spec}, providers={"tool_runtime": entries})
    os.environ["HOSTEL_TEST_SECRET"] = "in the host's environment"
    try:
        async with Host.from_config(config) as host:
            # Every worker is forked from its provider's zygote, where the .pth code ran: unconfined there ...
            assert await host.provider("open").seen() == {
                "who": "zygote", "parent_environ": "allowed", "other_envs": "allowed"
            }  # fmt: skip
            denied = "denied: Permission denied"
            # ... and confined from the zygote's first line for a sandboxed provider,
            assert await host.provider("boxed").seen() == {
                "who": "zygote", "parent_environ": denied, "other_envs": denied
            }  # fmt: skip
            launcher = host.supervisor.launchers.get("process")
            assert isinstance(launcher, ProcessLauncher) and launcher.zygotes is not None
            zygote_pids = launcher.zygotes.pids()
            boxed_zygote = psutil.Process(host.supervisor.providers["boxed"].worker.pid).ppid()  # type: ignore[union-attr]
            assert boxed_zygote in zygote_pids
            cmdline = Path(f"/proc/{boxed_zygote}/cmdline").read_bytes().split(b"\0")
            assert cmdline[1:3] == [b"-S", b"-c"] and cmdline[-3] == b"hostel_sdk.zygote"  # ... zygote FD
            # ... as a spawned worker's is from its own (zygote: false).
            assert await host.provider("spawned").seen() == {
                "who": "worker", "parent_environ": denied, "other_envs": denied
            }  # fmt: skip
            spawned = host.supervisor.providers["spawned"].worker
            assert spawned is not None
            cmdline = Path(f"/proc/{spawned.pid}/cmdline").read_bytes().split(b"\0")
            assert cmdline[1:3] == [b"-S", b"-c"] and cmdline[-2] == b"hostel_sdk.worker"
            # A restart is forked from the same zygote and keeps what it saw.
            await host.restart("boxed")
            assert await host.provider("boxed").seen() == {
                "who": "zygote", "parent_environ": denied, "other_envs": denied
            }  # fmt: skip
            boxed, opened = host.supervisor.providers["boxed"], host.supervisor.providers["open"]
            assert boxed.env is not None and opened.env is not None
    finally:
        del os.environ["HOSTEL_TEST_SECRET"]

    def checks(env: Path) -> list[dict[str, str]]:
        lines = (env / "pth-seen.jsonl").read_text().splitlines()
        return [seen for seen in map(json.loads, lines) if seen["who"] == "_probe"]

    assert {"who": "_probe", "parent_environ": "allowed", "other_envs": "allowed"} in checks(opened.env.path)
    assert checks(boxed.env.path) and all(
        seen["parent_environ"].startswith("denied") and seen["other_envs"].startswith("denied")
        for seen in checks(boxed.env.path)
    )


async def test_a_sandboxed_worker_finds_no_named_unix_socket_but_its_own_and_the_hosts(tmp_path: Path) -> None:
    """A socket made outside everything the sandbox allows stands for docker.sock or an ssh agent: unconfined and
    with unix_sockets: any a worker connects to it; sandboxed it is not there (while its deps, over the host's
    callback socket, still work). Nor is TCP, by default."""
    outside = tmp_path / "engine"
    outside.mkdir()
    accepted: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(True)
        writer.close()

    entries = [
        {"provider_id": "boxed", "provider_type": "inline::chaos", "sandbox": True},
        {"provider_id": "opted_out", "provider_type": "inline::chaos", "sandbox": {"unix_sockets": "any"}},  # no net
        {"provider_id": "plain", "provider_type": "inline::chaos"},
    ]
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": chaos_spec()},
        providers={
            "inference": [{"provider_id": "victim", "provider_type": "inline::testprov"}],
            "tool_runtime": entries,
        },
    )
    server = await asyncio.start_unix_server(serve, path=str(outside / "engine.sock"))
    tcp = await asyncio.start_server(serve, "127.0.0.1", 0)  # stands for the host's gateway, or any service
    port = tcp.sockets[0].getsockname()[1]
    async with server, tcp, Host.from_config(config) as host:
        # sandbox: true has no network unless the entry asks for it
        assert (await host.provider("boxed").connect(host="127.0.0.1", port=port)).startswith("denied")
        assert await host.provider("plain").connect(host="127.0.0.1", port=port) == "connected"
        socket = str(outside / "engine.sock")
        assert await host.provider("plain").connect_unix(path=socket) == "connected"
        assert await host.provider("opted_out").connect_unix(path=socket) == "connected"
        assert await host.provider("boxed").connect_unix(path=socket) == "failed: No such file or directory"
        assert (await host.provider("boxed").list_dir(path="/")).startswith("denied")
        assert await host.provider("boxed").cwd() == os.getcwd()  # relative paths mean what they meant
        assert (await host.provider("boxed").hammer(seconds=0.2, concurrency=1))["ok"] > 0  # the host's socket
    assert len(accepted) == 3


async def test_a_worker_speaks_to_its_deps_only_for_the_user_whose_call_it_serves(host: Host) -> None:
    """The host binds each callback to the call that caused it: the user is the one the host authenticated for
    that call; one the worker writes in itself, or an ended call's, counts for nothing."""
    alice = {"principal": "alice", "attributes": {"roles": ["user"]}}
    admin = {"principal": "admin", "attributes": {"roles": ["admin"]}}
    as_alice = host.provider("evil", provider_data={"__authenticated_user": alice, "api_key": "k"})
    assert await as_alice.dependency_caller() == [alice, "k"]  # what a well-behaved provider relies on
    assert await as_alice.dependency_caller(forged_user=admin) == [alice, "k"]
    assert await host.provider("evil").dependency_caller(forged_user=admin) == [None, None]
    ended = await as_alice.raw_provider_data()
    assert "__hostel_call" in ended  # the key of a call that is over now
    assert await host.provider("evil").dependency_caller(raw=ended) == [None, "k"]
