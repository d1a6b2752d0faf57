"""hostel_sdk.testing: provider authors test their provider over the real wire, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from hostel_sdk.testing import serve
from tests.conftest import TESTPROV


@pytest.fixture(autouse=True)
def _testprov_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTPROV))


class FakeInference:
    async def greet(self, name: str) -> str:
        return f"fake, {name}"

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def fail(self, message: str) -> None:
        raise ValueError(message)

    async def provider_data(self) -> Any:
        from hostel_sdk import request_provider_data

        return request_provider_data()


async def test_serve_a_provider_built_from_its_module() -> None:
    async with serve(module="hostel_testprov", config={"greeting": "yo"}, config_class="hostel_testprov.Config") as p:
        assert await p.greet(name="x") == "yo, x"
        assert [i async for i in await p.count(n=3)] == [0, 1, 2]
        assert await p.inspect_item(item={"name": "a", "size": 1}) == {"type": "Item", "double": 2, "name": "a"}
        with pytest.raises(ValueError, match="boom"):
            await p.fail(message="boom")


async def test_serve_with_in_process_deps_through_the_callback_service() -> None:
    async with serve(
        module="hostel_testprov.store",
        config_class="hostel_testprov.store.StoreConfig",
        deps={"inference": FakeInference()},
    ) as store:
        assert await store.greet_through_inference(name="d") == "fake, d"
        assert await store.stream_through_inference(n=4) == [0, 1, 2, 3]
        assert await store.inference_error() == "ValueError: from inference"
        assert await store.with_options(provider_data={"k": 1}).provider_data_seen_by_inference() == {"k": 1}


async def test_serve_an_object_with_provider_data_validation() -> None:
    from hostel_testprov import Config, TestProvider

    async with serve(TestProvider(Config()), provider_data_validator="hostel_testprov.ProviderData") as p:
        assert await p.with_options(provider_data={"api_key": "s"}).provider_data() == {"api_key": "s"}
        with pytest.raises(ValueError, match="provider data rejected"):
            await p.with_options(provider_data={"nope": 1}).provider_data()


class RedactRequest(BaseModel):
    messages: list[dict[str, str]]


class RequestStyleShield:
    async def run_shield(self, request: RedactRequest) -> dict[str, Any]:
        for message in request.messages:
            message["content"] = message["content"].replace("123", "***")
        return {"violation": None}


async def test_mutations_of_a_wrapped_request_model_reach_the_caller_s_keyword_arguments() -> None:
    async with serve(RequestStyleShield()) as shield:
        messages = [{"role": "user", "content": "pin 123"}]
        assert await shield.run_shield(messages=messages) == {"violation": None}
        assert messages == [{"role": "user", "content": "pin ***"}]
