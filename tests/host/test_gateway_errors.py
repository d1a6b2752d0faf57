"""The gateway's last line of defence: an error nothing expected is one JSON 500 and one log record."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from hostel.config import HostelSettings, ServerSettings
from hostel.gateway import create_app


class _BrokenHost:
    """Just enough of a Host for the gateway, whose calls fail as no hostel error would."""

    config = SimpleNamespace(server=ServerSettings(), hostel=HostelSettings())
    traces = False

    def add_observer(self, observer: Any) -> None:
        pass

    def serving_channel(self, provider_id: str) -> None:
        return None

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals /srv/keys")


async def test_an_unexpected_exception_is_a_json_500_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    app = create_app(_BrokenHost())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/v1/providers/p/m", json={"a": 1}, headers={"Host": "127.0.0.1"})
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"type": "InternalError", "message": "internal error in hostel (RuntimeError)", "provider_id": None}
    }
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1 and "POST /v1/providers/p/m" in records[0].getMessage()
    assert "secret internals" not in response.text
