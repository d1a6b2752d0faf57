"""The CLI's requests to a running host: the admin token it reads, and a host that publishes it meanwhile."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostel.cli.client import request
from hostel.errors import HostelError
from hostel.gateway.admin import ADMIN_HEADER, admin_token_path
from tests.json_http import JsonHandler, serving


class _JustStarted(JsonHandler):
    """A host that answers its first admin request before its token file exists, and publishes it then."""

    home: Path
    port: int
    seen: list[str | None]

    def do_GET(self) -> None:
        given = self.headers.get(ADMIN_HEADER)
        self.seen.append(given)
        token = admin_token_path(self.home, self.port)
        if given != "the-token":
            if not token.exists():
                token.parent.mkdir(parents=True, exist_ok=True)
                token.write_text("the-token\n")
            self.answer(403, {"error": {"message": "needs this host's admin token", "type": "PermissionError"}})
        else:
            self.answer(200, {"providers": []})


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[argparse.Namespace, list[str | None]]]:
    monkeypatch.setenv("HOSTEL_HOME", str(tmp_path))
    seen: list[str | None] = []
    handler = type("Handler", (_JustStarted,), {"home": tmp_path, "seen": seen})
    with serving(handler) as server:
        handler.port = server.server_port
        yield argparse.Namespace(https=False, address="127.0.0.1", port=server.server_port, token=None), seen


Running = tuple[argparse.Namespace, list[str | None]]


def test_a_token_published_while_the_cli_asked_is_used_at_once(host: Running) -> None:
    opts, seen = host
    assert request(opts, "/v1/hostel/status") == {"providers": []}
    assert seen == [None, "the-token"]


def test_a_refusal_with_the_current_token_is_not_asked_again(host: Running, tmp_path: Path) -> None:
    opts, seen = host
    path = admin_token_path(tmp_path, opts.port)
    path.parent.mkdir(parents=True)
    path.write_text("a-stale-token\n")  # the file's token is not the host's: nothing new to try
    with pytest.raises(HostelError, match="needs this host's admin token"):
        request(opts, "/v1/hostel/status")
    assert seen == ["a-stale-token"]
