"""A real `ogx run` (OGX 1.5, installed into a venv of its own with hostel, as the example's README sets it up) with
OGX's own providers and the example's echo providers bridged through hostel, reached with unmodified clients
(network: the package index only)."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from hostel.bridge.mirror import config_class_name
from tests.bridge_servers import EXAMPLE, Server, chat, example_venv, needs_python312, run_python, running
from tests.conftest import hostel_pids, hub_pids, wait_until, worker_pids

pytestmark = needs_python312


@pytest.fixture(scope="module")
def ogx_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_venv(tmp_path_factory, "requirements-ogx.txt")


def test_ogx_files_provider_bridged_by_its_own_type(ogx_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example's OGX config: OGX's own inline::localfs, named by its type plus module: hostel, keeps the
    server's storage backend and moves a file both ways; the unmodified openai client sees OGX's own 404."""
    command = [str(ogx_venv / "bin" / "ogx"), "run", "--insecure"]
    with running(command, tmp_path_factory.mktemp("ogx-files"), config="ogx-files.yaml") as server:
        done = run_python(ogx_venv, str(EXAMPLE / "files_client.py"), server.url)
        assert done.stdout.splitlines() == [
            "files provider: inline::localfs",
            "uploaded: greeting.txt 1080000 bytes",
            "listed: True",
            "content matches: True",
            "deleted: True",
            "after deleting: HTTP 404",
        ]
        log = server.log.read_text(errors="replace")
        assert "hostel: provider localfs ready" in log and "Unknown SQL store backend" not in log
        assert (Path(server.home).parent / "store" / "sql_store.db").exists()  # the server's backend, shared


SPEC_SCRIPT = """
from ogx.core.datatypes import StackConfig
from ogx.core.distribution import get_provider_registry
from ogx_api import Api

def config(providers):
    entries = {api: [{"provider_id": api, "provider_type": kind, "module": "hostel", "config": {}}]
               for api, kind in providers.items()}
    return StackConfig(distro_name="t", apis=list(providers), providers=entries)

shared = ("responses", "messages", "interactions", "skills")  # four APIs, one provider type: inline::builtin
registry = get_provider_registry(config(dict.fromkeys(shared, "inline::builtin")))
for api in shared:
    spec = registry[Api(api)]["inline::builtin"]
    print(api, spec.api.value, spec.module, spec.config_class.rpartition(".")[2])
try:
    get_provider_registry(config({"conversations": "inline::builtin"}))
except Exception as exc:
    print("refused:", exc)
"""


def test_ogx_apis_that_share_a_provider_type_each_get_their_own_bridge_and_the_rest_are_refused(
    ogx_venv: Path,
) -> None:
    """OGX's loader takes every spec of an entry's type from hostel's list, whatever its API, and keeps the last: each
    of the four inline::builtin entries must still get its own API's bridge. An API hostel cannot bridge is an error
    naming it, not the in-process provider the server would otherwise run under `module: hostel`."""
    done = run_python(ogx_venv, "-c", SPEC_SCRIPT)
    lines = done.stdout.splitlines()
    for api in ("responses", "messages", "interactions", "skills"):
        assert f"{api} {api} hostel.bridge {config_class_name(api, 'inline::builtin')}" in lines
    refused = next(line for line in lines if line.startswith("refused:"))
    assert "cannot bridge OGX" in refused and "conversations API" in refused and "remove `module: hostel`" in refused


OGX_STREAM_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")  # ogx-client's own models warn about their own serialisation
from ogx_client import OgxClient
from ogx_client.models.open_ai_chat_completion_request_with_extra_body import OpenAIChatCompletionRequestWithExtraBody
client = OgxClient(base_url=sys.argv[1])
for model in ("echo-old/old", "echo-new/new"):
    chat = {"model": model, "messages": [{"role": "user", "content": "one two three"}], "stream": True}
    chunks = list(client.chat.completions.create(OpenAIChatCompletionRequestWithExtraBody.from_dict(chat)))
    print(model, len(chunks), "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip())
"""


def test_ogx_serves_the_same_bridged_providers(
    ogx_venv: Path, ogx_client_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """OGX, Llama Stack's renamed successor, as the server: same config, same bridge; streams read by OGX's own
    client, unmodified (each chunk validated into OGX's chunk model in the server, from its JSON)."""
    venv = ogx_venv
    command = [str(venv / "bin" / "ogx"), "run", "--insecure"]
    with running(command, tmp_path_factory.mktemp("ogx")) as server:
        old = chat(server, "echo-old/old", "hello ogx")
        assert old.json()["choices"][0]["message"]["content"] == "old echo from Llama Stack 0.2.22: hello ogx"
        new = chat(server, "echo-new/new", "hello ogx")
        assert new.json()["choices"][0]["message"]["content"] == "new echo from Llama Stack 0.7.3: hello ogx"
        streamed = subprocess.run(
            [str(ogx_client_python), "-c", OGX_STREAM_SCRIPT, server.url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert streamed.returncode == 0, streamed.stderr[-3000:]
        lines = streamed.stdout.splitlines()
        assert [line.split(" ", 2)[::2] for line in lines] == [
            ["echo-old/old", "old echo from Llama Stack 0.2.22: one two three"],
            ["echo-new/new", "new echo from Llama Stack 0.7.3: one two three"],
        ]
        assert all(int(line.split(" ", 2)[1]) > 1 for line in lines)  # streamed in chunks, not as one
        assert "does not fit the server's" not in server.log.read_text(errors="replace")
        # A client that goes away mid-stream stops the provider's generator in the worker, as it would in process;
        # and one that never awaits too (in process, OGX would go on pulling it after the client has gone).
        for mode in ("", "busy "):
            record = tmp_path_factory.mktemp("hang-up") / "record"
            assert _hang_up_after(server, "echo-new/new", f"until closed {mode}{record}", chunks=5) == 5
            assert wait_until(functools.partial(_says_closed, record), timeout=15), mode
        crashed = chat(server, "echo-old/old", "crash")
        assert crashed.status_code == 503 and "exited with code 7" in crashed.text
        assert wait_until(lambda: chat(server, "echo-old/old", "back").status_code == 200, timeout=30)
        assert "OGX 1.5" in server.log.read_text(errors="replace")
        assert len(worker_pids(str(server.home))) == 2
        server.proc.kill()  # a server killed outright: its workers go with it (parent-death signal)
        server.proc.wait(timeout=30)
        assert wait_until(lambda: not hostel_pids(str(server.home)), timeout=15)


def _says_closed(record: Path) -> bool:
    return record.exists() and record.read_text() == "closed"


def _hang_up_after(server: Server, model: str, text: str, *, chunks: int) -> int:
    """Read ``chunks`` events of a streamed chat completion, then close the connection; the events read."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": True}
    read = 0
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as reply:
        for line in reply.iter_lines():
            read += line.startswith("data: {")
            if read == chunks:
                break
    return read


def _recall(server: Server, count: int) -> list[str]:
    """``count`` chat completions at once, each on a connection of its own (the kernel hands them to the server's
    processes): what the provider recalls in each."""

    def one(_: int) -> str:
        with httpx.Client(headers={"connection": "close"}) as client:
            body = {"model": "echo-new/new", "messages": [{"role": "user", "content": "recall"}]}
            reply = client.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(count)))


def test_the_processes_of_a_multi_worker_ogx_server_share_one_worker_per_bridged_provider(
    ogx_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`ogx run` with `server.workers: 4`: each bridged provider runs once (a hub per provider, started by the first
    server process, the others attached); what one server process's call leaves in the provider's memory, calls
    through the others see; a server process killed (the hub's own parent) harms no call through the others;
    the server's stop stops every hub and worker."""
    tmp = tmp_path_factory.mktemp("ogx-workers")
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    command = [str(ogx_venv / "bin" / "ogx"), "run", "--insecure"]
    with running(command, tmp, config=str(EXAMPLE / "config.yaml")):
        pass  # OGX's own SQLite stores race when four processes create them at once: created by one first
    config["server"] = {**config.get("server", {}), "workers": 4, "host": "127.0.0.1"}
    (tmp / "workers.yaml").write_text(yaml.safe_dump(config))
    before = set(hub_pids())
    with running(command, tmp, config=str(tmp / "workers.yaml")) as server:
        hubs = {pid: parent for pid, parent in hub_pids().items() if pid not in before}
        assert len(hubs) == 2  # one per bridged provider
        workers = worker_pids(str(server.home))
        assert len(workers) == 2, workers  # not one per server process
        remembered = chat(server, "echo-new/new", "remember apple")
        assert remembered.status_code == 200, remembered.text
        recalled = _recall(server, 48)
        assert len(set(recalled)) == 1 and recalled[0].endswith("recalls: apple"), recalled

        server_processes = [p for p in psutil.Process(server.proc.pid).children() if p.pid not in hubs]
        assert len(server_processes) >= 4
        parent = psutil.Process(next(iter(hubs.values())))
        assert parent.pid in {p.pid for p in server_processes}
        parent.kill()  # the server process that started a hub
        parent.wait(timeout=10)
        after = _recall(server, 24)
        assert after == [recalled[0]] * 24
        assert sorted(worker_pids(str(server.home))) == sorted(workers) and set(hub_pids()) - before == set(hubs)
    assert wait_until(lambda: not set(hub_pids()) - before and not hostel_pids(str(server.home)), timeout=30)
    log = server.log.read_text(errors="replace")
    calls = {"echo-old": Counter[str](), "echo-new": Counter[str]()}
    for hub, process, count in re.findall(r"hostel hub (echo-\w+): server process (\d+) detached \((\d+) calls\)", log):
        calls[hub][process] += int(count)
    # echo-old had only the calls a server process makes at its start and in OGX's periodic model refresh (one
    # more or less where the stop cut in), echo-new those and this test's 73
    beyond = {process: count - calls["echo-old"][process] for process, count in calls["echo-new"].items()}
    assert abs(sum(beyond.values()) - 73) <= 5, calls
    assert sum(1 for n in beyond.values() if n >= 6) >= 2, calls  # the calls came through more than one process
    assert "hostel hub echo-new: stopping:" in log and "hostel hub echo-old: stopping:" in log


BIG_FILE_SCRIPT = """
import asyncio, hashlib, os, sys
from pathlib import Path
from starlette.datastructures import UploadFile
from ogx_api import RetrieveFileContentRequest, UploadFileRequest
from hostel.bridge import get_adapter_impl
from hostel.bridge.config import FilesBridgeConfig

def peak_mb(reset=False):
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) / 1024

async def main(source, copy, providers_d):
    impl = await get_adapter_impl(FilesBridgeConfig(
        provider_type="inline::streaming", provider_id="streaming", external_providers_dir=providers_d,
        config={"directory": str(Path(copy).parent / "stored")}, expose=["peak_rss_mb"]), {})
    host = impl.hostel
    worker_before = await impl._thread.run(lambda: host.call("streaming", "peak_rss_mb", (), {"reset": True}))
    before = peak_mb(reset=True)
    with open(source, "rb") as handle:
        upload = UploadFile(handle, filename="big.bin")
        stored = await impl.openai_upload_file(UploadFileRequest(purpose="assistants"), upload)
    response = await impl.openai_retrieve_file_content(RetrieveFileContentRequest(file_id=stored["id"]))
    digest = hashlib.sha256()
    with open(copy, "wb") as out:
        async for chunk in response.body_iterator:
            out.write(chunk)
            digest.update(chunk)
    server_growth = peak_mb() - before
    worker_growth = await impl._thread.run(lambda: host.call("streaming", "peak_rss_mb", (), {})) - worker_before
    print(type(response).__name__, stored["sha256"] == digest.hexdigest(), os.path.getsize(copy))
    print(round(server_growth), round(worker_growth))
    await impl.shutdown()

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_200_mb_file_through_the_bridge_keeps_server_and_worker_memory_bounded(
    ogx_venv: Path, tmp_path: Path
) -> None:
    """The bridge's factory and its Files methods as an OGX server calls them (OGX's own upload route reads an
    upload into memory first, up to its 100 MiB limit; what is measured here is what the bridge adds)."""
    from tests.conftest import provider_spec, write_yaml

    spec = provider_spec(module="hostel_testprov.files", config_class=None, provider_data_validator=None)
    write_yaml(tmp_path / "providers.d" / "inline" / "files" / "streaming.yaml", spec)
    source, copy = tmp_path / "200mb.bin", tmp_path / "copy.bin"
    with source.open("wb") as out:
        block = os.urandom(1 << 20)
        for _ in range(200):
            out.write(block)
    done = run_python(
        ogx_venv, "-c", BIG_FILE_SCRIPT, str(source), str(copy), str(tmp_path / "providers.d"),
        timeout=600, env={"HOSTEL_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    kind, *growth = done.stdout.splitlines()
    assert kind == f"StreamingResponse True {200 << 20}"
    server_growth, worker_growth = (int(x) for x in growth[0].split())
    assert server_growth < 64 and worker_growth < 64, (server_growth, worker_growth)
    assert not hostel_pids(str(tmp_path / "home"))
