"""Full call semantics over real workers: deps callbacks, least privilege, provider data, deadlines,
cancellation, payload limits and routing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hostel import CallTimeoutError, Host, RemoteError, RoutingError
from tests.conftest import TESTPROV, make_config, provider_spec, wait_until

SPECS = {
    "inline/inference/testprov": provider_spec(),
    "inline/vector_io/store": provider_spec(
        module="hostel_testprov.store", config_class="hostel_testprov.store.StoreConfig", api_dependencies=["inference"]
    ),
}
PROVIDERS = {
    "inference": [{"provider_id": "infer", "provider_type": "inline::testprov", "config": {"greeting": "hey"}}],
    "vector_io": [{"provider_id": "store", "provider_type": "inline::store"}],
}


@pytest.fixture
async def host(tmp_path: Path) -> Host:
    async with Host.from_config(make_config(tmp_path, specs=SPECS, providers=PROVIDERS)) as started:
        yield started


async def test_provider_calls_its_dependency_unary_and_stream(host: Host) -> None:
    store = host.provider("store")
    assert await store.greet_through_inference(name="dep") == "hey, dep"
    assert await store.stream_through_inference(n=300) == list(range(300))
    assert [x async for x in await store.relay_stream(n=3)] == [0, 10, 20]  # a stream served while streaming


async def test_deps_work_from_another_event_loop_in_a_thread(host: Host) -> None:
    assert await host.provider("store").greet_from_another_loop(name="thread") == ["hey, thread", [0, 1, 2]]


async def test_deps_are_keyed_by_hostel_sdk_api_without_llama_stack(host: Host) -> None:
    assert await host.provider("store").dep_keys() == ["hostel_sdk.api.Api:inference"]


async def test_exceptions_from_a_dependency_arrive_as_python_exceptions(host: Host) -> None:
    assert await host.provider("store").inference_error() == "ValueError: from inference"


async def test_a_dependencys_own_exception_types_arrive_as_themselves(host: Host) -> None:
    store = host.provider("store")
    assert await store.typed_inference_error(kind="quota") == ["QuotaError", "over quota", 429]
    assert await store.typed_inference_error(kind="fast") == [
        "UnsupportedModeError",
        "mode 'fast' is not supported",
        None,
    ]


async def test_an_undeclared_api_is_refused_with_permission_error(host: Host) -> None:
    answer = await host.provider("store").call_undeclared_api()
    assert answer.startswith("PermissionError:") and "did not declare" in answer and "inference" in answer


async def test_provider_data_reaches_the_dependency_too(host: Host) -> None:
    seen = await host.provider("store", provider_data={"api_key": "k1"}).provider_data_seen_by_inference()
    assert seen == {"api_key": "k1"}


async def test_deadline_cancels_the_call_in_the_worker(host: Host, tmp_path: Path) -> None:
    record = tmp_path / "record"
    with pytest.raises(CallTimeoutError):
        await host.provider("infer", timeout=0.3).sleep_tracked(seconds=30, record=str(record))
    assert wait_until(lambda: record.exists() and record.read_text() == "cancelled", timeout=5)


async def test_deadline_passes_through_a_dependency(host: Host) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CallTimeoutError):
        await host.provider("store", timeout=0.5).slow_inference(seconds=30)
    assert loop.time() - started < 5
    assert await host.provider("infer").greet(name="still fine") == "hey, still fine"


async def test_cancelling_the_caller_cancels_the_worker_call(host: Host, tmp_path: Path) -> None:
    record = tmp_path / "record"
    task = asyncio.create_task(host.provider("infer").sleep_tracked(seconds=30, record=str(record)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_until(lambda: record.exists() and record.read_text() == "cancelled", timeout=5)


async def test_concurrent_calls_share_one_session_and_each_gets_its_own_answer_as_it_finishes(host: Host) -> None:
    infer = host.provider("infer")
    delays = [0.4, 0.0, 0.2, 0.1] * 5
    finished: list[int] = []

    async def one(i: int, seconds: float) -> float:
        answer = await infer.sleep(seconds=seconds)
        finished.append(i)
        return float(answer)

    assert await asyncio.gather(*(one(i, d) for i, d in enumerate(delays))) == delays
    assert finished.index(1) < finished.index(0)  # a quick answer is not held behind a slow one
    session = host.supervisor.providers["infer"].channel._session  # type: ignore[union-attr]
    assert session is not None and session.failure is None  # they went over the session, which is still open


async def test_a_session_survives_a_timed_out_call_and_a_failing_one(host: Host) -> None:
    infer = host.provider("infer")
    with pytest.raises(CallTimeoutError):
        await host.provider("infer", timeout=0.2).sleep(seconds=30)
    with pytest.raises(RemoteError, match="boom"):
        await infer.fail(message="boom")
    assert await asyncio.gather(*(infer.add(a=i, b=1) for i in range(50))) == [i + 1 for i in range(50)]


async def test_stopping_lets_calls_in_flight_finish_and_an_idle_session_does_not_hold_the_stop(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    async with Host.from_config(make_config(tmp_path, hostel={"stop_grace_s": 30})) as host:
        provider = host.provider("t")
        assert await provider.add(a=1, b=2) == 3  # the session is open
        in_flight = asyncio.ensure_future(provider.sleep(seconds=0.5))
        await asyncio.sleep(0.2)
        stopping = loop.time()
    assert await in_flight == 0.5
    # The worker ends its sessions once their calls are answered, not when the 30 s grace runs out.
    assert loop.time() - stopping < 15


async def test_closing_a_stream_stops_the_provider_generator(host: Host, tmp_path: Path) -> None:
    record = tmp_path / "record"
    stream = await host.provider("infer").count_tracked(n=10_000, record=str(record))
    got = [await stream.__anext__() for _ in range(3)]
    await stream.aclose()
    assert got == [0, 1, 2]
    assert wait_until(lambda: record.exists() and record.read_text() == "closed", timeout=5)


async def test_sixty_megabyte_argument_within_the_default_limit(host: Host) -> None:
    data = "x" * (60 * 1024 * 1024)
    assert await host.provider("infer").length(data=data) == len(data)


async def test_slow_calls_to_one_provider_do_not_block_another(host: Host) -> None:
    slow = asyncio.create_task(host.provider("infer").sleep(seconds=2))
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await host.provider("store").dep_keys()
    assert loop.time() - started < 1.0
    assert await slow == 2


async def test_routing_by_the_models_table(tmp_path: Path) -> None:
    providers = {
        "inference": [
            {"provider_id": "a", "provider_type": "inline::testprov", "config": {"greeting": "A"}},
            {"provider_id": "b", "provider_type": "inline::testprov", "config": {"greeting": "B"}},
        ],
        "safety": [{"provider_id": "guard", "provider_type": "inline::testprov", "config": {"greeting": "G"}}],
    }
    models = [
        {"model_id": "llama3", "provider_id": "a", "provider_model_id": "llama3.2:1b"},
        {"model_id": "other", "provider_id": "b"},
    ]
    shields = [
        {"shield_id": "guard", "provider_id": "guard", "provider_shield_id": "llama-guard-3",
         "params": {"threshold": 0.5}}
    ]  # fmt: skip
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/safety/testprov": provider_spec()},
        providers=providers,
        models=models,
        shields=shields,
    )
    async with Host.from_config(config) as host:
        inference = host.api("inference")
        assert await inference.which_model(model="llama3") == {"model": "llama3.2:1b", "greeting": "A"}
        assert await inference.which_model(model="other") == {"model": "other", "greeting": "B"}
        with pytest.raises(RoutingError, match=r"no inference provider serves model 'ghost'; .*llama3, other"):
            await inference.which_model(model="ghost")
        with pytest.raises(RoutingError, match="has 2 providers"):
            await inference.greet(name="x")
        with pytest.raises(RoutingError, match="no provider serves API 'vector_io'"):
            host.api("vector_io")
        # The stack-injected model_store reads the same table, from inside the worker.
        assert await host.provider("b").model_info(model_id="llama3") == {
            "provider_resource_id": "llama3.2:1b",
            "known": True,
        }
        with pytest.raises(RemoteError, match="model 'ghost' not found"):
            await host.provider("a").model_info(model_id="ghost")
        # and shield_store reads the shields table
        assert await host.provider("guard").shield_info(shield_id="guard") == {
            "provider_resource_id": "llama-guard-3",
            "params": {"threshold": 0.5},
        }


def test_worker_run_by_hand_says_what_it_is() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hostel_sdk.worker"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "hostel" in done.stderr and "not meant to be run by hand" in done.stderr and done.stdout == ""


def _python312() -> bool:
    from tests.conftest import has_python

    return has_python("3.12")


@pytest.mark.skipif(not _python312(), reason="Llama Stack 0.7 needs Python >= 3.12, not found on this machine")
async def test_llama_stack_provider_sees_its_api_enum_and_reads_provider_data_its_way(tmp_path: Path) -> None:
    specs = {
        "inline/inference/testprov": provider_spec(),
        "inline/tool_runtime/lsprov": provider_spec(
            module="hostel_testprov.lsprov", config_class=None, pip_packages=[str(TESTPROV), "llama-stack==0.7.3"],
            api_dependencies=["inference"],
        ),
    }  # fmt: skip
    providers = {
        "inference": [{"provider_id": "infer", "provider_type": "inline::testprov"}],
        "tool_runtime": [
            {
                "provider_id": "ls",
                "provider_type": "inline::lsprov",
                "python": "3.12",
                # Its ToolRuntime protocol methods are callable; these helpers only because they are listed.
                "expose": [
                    "llama_stack_version",
                    "dep_keys",
                    "greet_through_inference",
                    "who_is_asking",
                    "who_is_asking_each",
                    "embedding_result_type",
                    "get_request_provider_data",
                    "authenticated_user",
                ],
            }
        ],
    }
    models = [{"model_id": "m", "provider_id": "infer"}]
    async with Host.from_config(make_config(tmp_path, specs=specs, providers=providers, models=models)) as host:
        ls = host.provider("ls", provider_data={"api_key": "k9"})
        assert await ls.llama_stack_version() == "0.7.3"
        assert await ls.dep_keys() == ["llama_stack_api.datatypes.Api:inference"]
        assert await ls.greet_through_inference(name="ls") == "hello, ls"
        # deps results come back as the API protocol's return type of the provider's own Llama Stack
        assert await ls.embedding_result_type() == "OpenAIEmbeddingsResponse:3"
        assert await ls.who_is_asking() == {"api_key": "k9"}  # NeedsRequestProviderData, unmodified
        assert await host.provider("ls").who_is_asking() is None
        # ... and inside a generator, as its items are taken (in process, the server's context holds them too)
        assert [x async for x in await ls.who_is_asking_each(n=2)] == [{"api_key": "k9"}] * 2
        # The gateway's authenticated user reaches a Llama Stack provider as Llama Stack's own User.
        user = {"principal": "alice", "attributes": {"roles": ["admin"]}}
        as_alice = host.provider("ls", provider_data={"__authenticated_user": user})
        assert await as_alice.authenticated_user() == {"type": "User", **user}
        assert await host.provider("ls").authenticated_user() is None
        # A Llama Stack provider's callable methods are its API protocol's and its `expose` list, nothing else;
        # a lifecycle method stays the host's even when listed.
        with pytest.raises(RemoteError, match="lifecycle method: only the host calls it"):
            await host.provider("ls").get_request_provider_data()


@pytest.mark.skipif(not _python312(), reason="llama-stack-api needs Python >= 3.12, not found on this machine")
async def test_a_provider_missing_protocol_methods_fails_at_stage_protocol(tmp_path: Path) -> None:
    from hostel import ProviderStartError

    specs = {
        "inline/eval/partial": provider_spec(
            module="hostel_testprov.partial_eval", config_class=None,
            pip_packages=[str(TESTPROV), "llama-stack-api==0.7.3", "httpx"],
        )
    }  # fmt: skip
    providers = {"eval": [{"provider_id": "partial", "provider_type": "inline::partial", "python": "3.12"}]}
    with pytest.raises(ProviderStartError) as exc:
        await Host.from_config(make_config(tmp_path, specs=specs, providers=providers)).start()
    assert exc.value.stage == "protocol"
    assert "job_result" in str(exc.value) and "run_eval" not in str(exc.value).split("API protocol")[1]
