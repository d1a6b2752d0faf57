"""Real workers in real venvs, called over gRPC on Unix sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from hostel import EnvBuildError, Host, ProviderStartError, RemoteError
from hostel.errors import BadArgumentsError, MethodNotFoundError, PayloadTooLargeError, ProviderDataError
from hostel_sdk import codec
from tests.conftest import make_config, provider_spec


@pytest.fixture
async def host(tmp_path: Path) -> Host:
    async with Host.from_config(make_config(tmp_path)) as started:
        yield started


async def test_value_call_runs_in_another_process_and_venv(host: Host) -> None:
    t = host.provider("t")
    assert await t.greet(name="Ada") == "hi, Ada"
    assert await t.greet("Ada") == "hi, Ada"  # positional arguments work too
    who = await t.whoami()
    assert who["pid"] != os.getpid()
    assert who["prefix"] != sys.prefix and "envs" in who["prefix"]


async def test_sync_methods_and_models_round_trip(host: Host) -> None:
    t = host.provider("t")
    assert await t.add(a=2, b=3) == 5
    assert await t.inspect_item(item={"name": "box", "size": 4}) == {"type": "Item", "double": 8, "name": "box"}
    assert await t.make_item(name="abc") == {"name": "abc", "size": 3}


async def test_arguments_named_method_or_self_reach_the_provider(host: Host) -> None:
    t = host.provider("t")
    assert await t.keywords(method="m", self="s") == {"method": "m", "self": "s"}
    assert await t.call("keywords", method="m", self="s") == {"method": "m", "self": "s"}


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0.0, -1.0])
async def test_a_timeout_must_be_finite_and_positive(host: Host, timeout: float) -> None:
    with pytest.raises(ValueError, match="finite, positive"):
        host.provider("t", timeout=timeout)


async def test_stream_of_thousands_of_items_in_order(host: Host) -> None:
    stream = await host.provider("t").count(n=5000)
    assert [x async for x in stream] == list(range(5000))


async def test_a_generator_that_never_awaits_sends_its_first_item_at_once(host: Host) -> None:
    # 8 KiB items, 3 ms of CPU each: a worker that let the generator fill its whole send window (1 MiB) first
    # delivered item 0 after item 128 was made; now it leaves as the generator goes on.
    stream = await host.provider("t").busy_stream(n=200, size=8192, busy_s=0.003)
    items = []
    async for item in stream:
        if not items:
            first_received = time.monotonic()  # CLOCK_MONOTONIC: one clock for both processes
        items.append(item)
    assert [item["i"] for item in items] == list(range(200))
    assert first_received < items[64]["made"]


async def test_method_that_returns_a_value_or_a_stream(host: Host) -> None:
    t = host.provider("t")
    assert await t.maybe_stream(n=3) == [0, 1, 2]
    assert [x async for x in await t.maybe_stream(n=3, stream=True)] == [0, 1, 2]


async def test_provider_exception_comes_back_as_remote_error(host: Host) -> None:
    with pytest.raises(RemoteError) as exc:
        await host.provider("t").fail(message="nope")
    assert exc.value.type_name == "ValueError"
    assert exc.value.remote_message == "nope"
    assert "in fail" in exc.value.remote_traceback
    assert exc.value.provider_id == "t"


async def test_a_module_missing_from_the_env_says_to_add_its_package(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider that imports a package only when a method runs passes the build's import check; the call that
    needs it says what the operator must do (a spec that forgot it: OGX's inline::sqlite-vec and numpy)."""
    caplog.set_level(logging.WARNING, "hostel.calls")  # whatever an earlier test left the levels at
    t = host.provider("t")
    assert await t.uses(module="json") == "json"
    with pytest.raises(RemoteError) as exc:
        await t.uses(module="numpy.linalg")
    assert exc.value.type_name == "ModuleNotFoundError"
    assert "its env has no module 'numpy': add the package that provides it to the provider's pip_packages" in str(
        exc.value
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "hostel.calls"]
    assert any("uses() raised ModuleNotFoundError" in m and "provider's pip_packages" in m for m in logged)


async def test_error_mid_stream_keeps_delivered_items(host: Host) -> None:
    got = []
    with pytest.raises(RemoteError, match="stream broke after 3"):
        async for x in await host.provider("t").fail_mid_stream(after=3):
            got.append(x)
    assert got == [0, 1, 2]


async def test_unknown_method_and_bad_arguments(host: Host) -> None:
    with pytest.raises(MethodNotFoundError, match="no callable method 'nope'"):
        await host.provider("t").nope()
    with pytest.raises(BadArgumentsError, match="missing a required argument: 'name'"):
        await host.provider("t").greet()
    with pytest.raises(BadArgumentsError, match=r"(?s)item.*size"):
        await host.provider("t").inspect_item(item={"name": "x"})


async def test_arguments_changed_in_place_change_for_the_caller(host: Host) -> None:
    messages = [{"role": "user", "content": "my secret"}, {"role": "user", "content": "plain"}]
    assert await host.provider("t").redact(messages=messages) is None
    assert messages == [{"role": "user", "content": "my [REDACTED]"}, {"role": "user", "content": "plain"}]
    item = {"name": "old", "size": 1}
    await host.provider("t").rename(item, name="new")  # positional, rebuilt into a model in the worker
    assert item == {"name": "new", "size": 1}
    untouched = [{"role": "user", "content": "nothing to hide"}]
    await host.provider("t").redact(messages=untouched)
    assert untouched == [{"role": "user", "content": "nothing to hide"}]


async def test_eight_megabyte_argument_and_non_ascii(host: Host) -> None:
    t = host.provider("t")
    big = "ü" * (4 * 1024 * 1024)  # 8 MiB of UTF-8
    assert await t.length(data=big) == len(big)
    text = "日本語 — ñandú 🦙"
    assert await t.echo(value={"text": text, "list": [text]}) == {"text": text, "list": [text]}


async def test_long_strings_travel_beside_the_json_unchanged(host: Host) -> None:
    t = host.provider("t")
    for text in ("a" * (codec.LONG_TEXT - 1), "ñ🦙" * codec.LONG_TEXT, "x" * (3 << 20), "\ud800" * codec.LONG_TEXT):
        assert await t.echo(value=text) == text  # argument in kwargs_text, result in value_text
    nested = {"doc": "y" * codec.LONG_TEXT, "n": 1}
    assert await t.echo(value=nested) == nested  # only top-level strings leave the JSON
    assert await t.length(data="z" * codec.LONG_TEXT) == codec.LONG_TEXT


async def test_payload_over_the_limit_is_refused_before_sending(tmp_path: Path) -> None:
    async with Host.from_config(make_config(tmp_path, hostel={"max_message_mb": 1})) as host:
        with pytest.raises(PayloadTooLargeError, match="over the 1 MiB limit"):
            await host.provider("t").length(data="x" * (2 * 1024 * 1024))
        assert await host.provider("t").length(data="ok") == 2  # the worker is fine
        with pytest.raises(PayloadTooLargeError, match="size limit"):
            await host.provider("t").blob(size=2 * 1024 * 1024)  # a result over the limit
        assert await host.provider("t").blob(size=3) == "xxx"


async def test_provider_output_is_never_taken_for_a_handshake(host: Host) -> None:
    assert await host.provider("t").noisy() == "ok"
    assert await host.provider("t").greet(name="again") == "hi, again"


async def test_provider_data_valid_invalid_absent(host: Host) -> None:
    assert await host.provider("t").provider_data() is None
    assert await host.provider("t", provider_data={"api_key": "k"}).provider_data() == {"api_key": "k"}
    with pytest.raises(ProviderDataError, match="api_key"):
        await host.provider("t", provider_data={"wrong": 1}).provider_data()


async def test_concurrent_calls_overlap_in_one_worker(host: Host) -> None:
    t = host.provider("t")
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(t.sleep(seconds=0.5) for _ in range(6)))
    assert results == [0.5] * 6
    assert loop.time() - started < 3.0  # serialised would take at least 3 s


async def test_status_reports_ready_workers(host: Host) -> None:
    (status,) = host.status()
    assert status.provider_id == "t" and status.state == "ready" and status.api == "tool_runtime"
    assert status.pid and status.restarts == 0 and status.env_path and Path(status.env_path).is_dir()
    assert status.provider_type == "inline::testprov"


async def test_invalid_config_fails_at_stage_config_with_pydantic_message(tmp_path: Path) -> None:
    path = make_config(
        tmp_path,
        providers={
            "tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "config": {"greeting": 5}}]
        },
    )
    with pytest.raises(ProviderStartError) as exc:
        async with Host.from_config(path):
            pass
    assert exc.value.stage == "config" and exc.value.provider_id == "t"
    assert "Input should be a valid string" in str(exc.value)
    assert "Traceback" not in str(exc.value)  # one paragraph that names the field, not the loader's traceback


async def test_factory_failure_fails_at_stage_factory_with_stderr_tail(tmp_path: Path) -> None:
    path = make_config(
        tmp_path,
        providers={
            "tool_runtime": [
                {"provider_id": "t", "provider_type": "inline::testprov", "config": {"fail_in_factory": True}}
            ]
        },
    )
    host = Host.from_config(path)
    with pytest.raises(ProviderStartError) as exc:
        await host.start()
    assert exc.value.stage == "factory"
    assert "factory refused to build" in str(exc.value)
    assert "RuntimeError: factory refused to build" in exc.value.stderr_tail
    assert [s.state for s in host.status()] == ["stopped"]


async def test_a_module_that_does_not_import_fails_the_build_before_any_start(tmp_path: Path) -> None:
    path = make_config(tmp_path, specs={"inline/tool_runtime/testprov": provider_spec(module="hostel_no_such_module")})
    host = Host.from_config(path)
    with pytest.raises(EnvBuildError) as exc:
        await host.start()
    assert exc.value.provider_id == "t" and "stage import" in str(exc.value)
    assert "hostel_no_such_module" in str(exc.value) and "pip_packages" in str(exc.value)
    assert [s.pid for s in host.status()] == [None]  # never started


async def test_a_missing_config_class_and_factory_fail_the_build_by_stage(tmp_path: Path) -> None:
    bad_config = make_config(
        tmp_path / "a",
        specs={"inline/tool_runtime/testprov": provider_spec(config_class="hostel_testprov.NoSuchConfig")},
    )
    with pytest.raises(EnvBuildError, match=r"stage config.*NoSuchConfig"):
        await Host.from_config(bad_config).start()
    no_factory = make_config(  # an inline module served as remote: it has no get_adapter_impl()
        tmp_path / "b",
        specs={
            "remote/inference/testprov": {
                "adapter": {**provider_spec(module="hostel_testprov.store"), "config_class": None}
            }
        },
        providers={"inference": [{"provider_id": "t", "provider_type": "remote::testprov"}]},
    )
    with pytest.raises(EnvBuildError, match=r"stage factory.*no get_adapter_impl"):
        await Host.from_config(no_factory).start()


async def test_remote_provider_uses_get_adapter_impl(tmp_path: Path) -> None:
    path = make_config(
        tmp_path,
        specs={"remote/inference/testprov": {"adapter": {"adapter_type": "testprov", **provider_spec()}}},
        providers={"inference": [{"provider_id": "t", "provider_type": "remote::testprov"}]},
    )
    async with Host.from_config(path) as host:
        assert await host.provider("t").greet(name="r") == "hello, r"
