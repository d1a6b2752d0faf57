"""hostel.gateway.health: a provider's own health() as Llama Stack reports it, asked with a timeout, cached."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from hostel.errors import MethodNotFoundError, RemoteError
from hostel.gateway.health import ProviderHealth, normalise


class HealthChannel:
    """A channel whose ``health`` call answers, raises or hangs as told."""

    def __init__(self, answer: Any = None, *, raises: BaseException | None = None, hangs: bool = False) -> None:
        self.answer, self.raises, self.hangs = answer, raises, hangs
        self.calls = 0

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        assert method == "health"
        self.calls += 1
        if self.hangs:
            await asyncio.sleep(timeout or 0)
            raise TimeoutError
        if self.raises is not None:
            raise self.raises
        return self.answer


async def test_each_outcome_reads_as_llama_stack_reports_it() -> None:
    channels: dict[str, Any] = {
        "ok": HealthChannel({"status": "OK"}),
        "enum": HealthChannel({"status": "Error", "message": "ollama is down"}),
        "none": HealthChannel(
            raises=MethodNotFoundError(
                provider_id="none", method="health", type_name="AttributeError", message="no health"
            )
        ),
        "raises": HealthChannel(
            raises=RemoteError(provider_id="raises", method="health", type_name="OSError", message="boom")
        ),
        "slow": HealthChannel(hangs=True),
        "stopped": None,
    }
    health = ProviderHealth(channels.get, timeout_s=0.05)
    reports = await health.reports(channels)
    assert reports["ok"] == {"status": "OK"}
    assert reports["enum"] == {"status": "Error", "message": "ollama is down"}
    assert reports["none"]["status"] == "Not Implemented"
    assert reports["raises"] == {"status": "Error", "message": "Health check failed: boom"}
    assert reports["slow"] == {"status": "Error", "message": "Health check timed out after 0.05 seconds"}
    assert reports["stopped"] is None


async def test_answers_are_kept_briefly_and_shared_by_concurrent_requests() -> None:
    channel = HealthChannel({"status": "OK"})
    health = ProviderHealth(lambda _: channel, ttl_s=60)
    await asyncio.gather(*(health.reports(["p"]) for _ in range(5)))
    await health.reports(["p"])
    assert channel.calls == 1
    fresh = ProviderHealth(lambda _: channel, ttl_s=0)
    await fresh.reports(["p"])
    await asyncio.sleep(0.01)
    await fresh.reports(["p"])
    assert channel.calls == 3


def test_a_health_answer_in_another_shape_is_an_error_that_says_so() -> None:
    assert normalise({"status": "ok"}) == {"status": "OK"}
    assert normalise({"status": "not implemented"}) == {"status": "Not Implemented"}
    assert normalise("fine")["status"] == "Error" and "'fine'" in normalise("fine")["message"]
