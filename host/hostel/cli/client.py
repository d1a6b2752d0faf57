"""The commands that talk to a running host over its HTTP API: ``ps``, ``reload``, ``restart``, ``stop``,
``start``. They print for users; ``hostel.cli.main`` turns their errors into exit codes."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from hostel.errors import ConfigError, HostelError, Problem

# The CLI's commands import what they use when they run: `hostel --help` loads none of the host.


class ReloadFailedError(HostelError):
    """A reload that applied only part of the new config (exit 1)."""


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """How a command reaches a running host: its address, and the token its server.auth accepts."""
    parser.add_argument("--port", type=int, default=8321)
    parser.add_argument("--host", default="127.0.0.1", dest="address")
    parser.add_argument("--https", action="store_true", help="the host serves TLS (server.tls_certfile)")
    parser.add_argument("--token", default=os.environ.get("HOSTEL_TOKEN"), help="bearer token (default $HOSTEL_TOKEN)")


def _admin_token(port: int) -> str | None:
    """The admin token of a host this user runs on ``port``, if there is one."""
    from hostel.envs.store import default_home
    from hostel.gateway.admin import admin_token_path

    try:
        return admin_token_path(default_home(), port).read_text().strip()
    except OSError:
        return None


def request(opts: argparse.Namespace, path: str, *, post: bool = False) -> Any:
    """The JSON answer of a running host to ``path``; ``HostelError`` saying what went wrong (``ConfigError``
    for a reload whose config does not validate, ``ReloadFailedError`` for one that failed in part)."""
    from hostel.gateway.admin import ADMIN_HEADER

    url = f"{'https' if opts.https else 'http'}://{opts.address}:{opts.port}{path}"
    headers = {"Content-Type": "application/json"} if post else {}
    if opts.token:
        headers["Authorization"] = f"Bearer {opts.token}"
    for last in (False, True):
        admin = _admin_token(opts.port)
        if admin is not None:
            headers[ADMIN_HEADER] = admin
        req = urllib.request.Request(url, data=b"{}" if post else None, method="POST" if post else "GET",
                                     headers=headers)  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=900) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 403 and not last and _admin_token(opts.port) != admin:
                continue  # a host that had just started published its token meanwhile: ask again with it
            raise _refusal(url, exc) from None
        except (OSError, ValueError) as exc:
            raise HostelError(f"no hostel answering at {url} ({exc}); start one with `hostel run CONFIG`") from None
    raise AssertionError("unreachable: the second try returns or raises")


def _refusal(url: str, exc: urllib.error.HTTPError) -> HostelError:
    try:
        body = json.loads(exc.read())
        error = body["error"]
    except (ValueError, KeyError, TypeError):
        body, error = {}, {"message": f"HTTP {exc.code}", "type": ""}
    if error.get("type") == "ConfigError":
        return ConfigError([Problem(url, "", f"the host refused the reload, nothing changed: {error['message']}")])
    if error.get("type") == "ReloadFailed":
        return ReloadFailedError(_report(body["reload"]))
    hint = "; give its token with --token or HOSTEL_TOKEN" if exc.code == 401 else ""
    return HostelError(f"{url}: {error['message']}{hint}")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print aligned columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def ps(opts: argparse.Namespace) -> int:
    """``hostel ps``: every provider's state, pid (``pid@node`` for a worker on another node), memory and CPU
    time, and the host's own."""
    status = request(opts, "/v1/hostel/status")
    if opts.json:
        print(json.dumps(status, indent=2))
        return 0
    host = status["host"]
    rows = [["(host)", "-", "-", "running", host["pid"], "-", _mb(host.get("rss_bytes")),
             _mb(host.get("pss_bytes")), _cpu(host.get("cpu_seconds")), "-"]]  # fmt: skip
    for r in status["providers"]:
        # A provider with replicas: its totals, then a row per replica (``id#N``).
        for row in (r, *r.get("replicas", ())):
            name = r["provider_id"] if row is r else f"{r['provider_id']}#{row['replica']}"
            pid = f"{row['pid']}->{row['new_pid']}" if row.get("new_pid") else row["pid"] or "-"
            pid = "-" if row is r and r.get("replicas") else pid
            address = row.get("address") or ""
            if pid != "-" and address and not address.startswith("unix:"):  # a worker on another node: where
                pid = f"{pid}@{address.rpartition(':')[0]}"
            rows.append(
                [name, row["api"], row["provider_type"], row["state"], pid, row["restarts"], _mb(row["rss_bytes"]),
                 _mb(row["pss_bytes"]), _cpu(row["cpu_seconds"]), row["last_exit"] or "-"]
            )  # fmt: skip
    table(["PROVIDER", "API", "TYPE", "STATE", "PID", "RESTARTS", "RSS MB", "PSS MB", "CPU S", "LAST EXIT"], rows)
    return 0


def operate(opts: argparse.Namespace) -> int:
    """``hostel restart|stop|start ID``: one provider of a running host."""
    status = request(opts, f"/v1/hostel/providers/{opts.provider_id}/{opts.command}", post=True)
    print(f"{status['provider_id']}: {status['state']} [pid {status['pid'] or '-'}], restarts {status['restarts']}")
    return 0


def reload(opts: argparse.Namespace) -> int:
    """``hostel reload``: the running host re-reads its run config (and env file) and applies the difference."""
    report = request(opts, "/v1/hostel/reload", post=True)
    print(_report(report))
    return 0


def _report(report: dict[str, Any]) -> str:
    from hostel.supervise.reload import ReloadReport

    return f"{ReloadReport.from_dict(report).summary()}\n({report['seconds']:.2f}s)"
