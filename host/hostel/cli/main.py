"""The ``hostel`` command. The only place that prints for users and exits.

Exit codes: 0 success, 1 runtime failure (build, start, call), 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hostel.cli import client, log_setup
from hostel.errors import ConfigError, HostelError

if TYPE_CHECKING:
    from hostel.config.plan import Plan

# Each command imports what it uses when it runs: `hostel --help` and argument errors load none of the host
# (pydantic models, grpc, the supervisor), which takes seconds where bytecode cannot be written.

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hostel", description="Run Llama Stack external providers, each in its own venv and process."
    )
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _env_commands(sub)
    _host_commands(sub)
    return parser


def _env_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that read a run config and build or inspect provider envs, specs and images."""
    check = sub.add_parser("check", help="validate a run config and its provider specs")
    check.add_argument("config")
    _env_file_option(check)
    check.add_argument(
        "--deep",
        action="store_true",
        help="also build every env and check each provider imports (module, config, factory)",
    )

    listing = sub.add_parser("list", help="list providers with their env status")
    listing.add_argument("config")
    listing.add_argument("--json", action="store_true", help="print JSON")

    build = sub.add_parser("build", help="build every provider env, with progress and a summary")
    build.add_argument("config")
    build.add_argument("--locked", action="store_true", help="install exactly the pins of hostel.lock")
    build.add_argument("--installer", choices=["auto", "uv", "pip"], default=None, help="default: uv, pip as fallback")
    build.add_argument(
        "--bundle", type=Path, default=None, metavar="FILE",
        help="with --locked: install from this `hostel pack` bundle alone, no index (offline)",
    )  # fmt: skip

    pack = sub.add_parser("pack", help="write one file with everything a --locked build needs, for offline machines")
    pack.add_argument("config")
    pack.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the bundle to write")
    pack.add_argument(
        "--provider", action="append", default=[], metavar="ID", help="pack only this provider (repeatable)"
    )
    pack.add_argument(
        "--no-interpreters", dest="interpreters", action="store_false",
        help="leave out the managed Pythons (uv's) the envs are built with: the target has its own",
    )  # fmt: skip

    lock = sub.add_parser("lock", help="build every env and write hostel.lock beside the config")
    lock.add_argument("config")
    lock.add_argument("--installer", choices=["auto", "uv", "pip"], default=None)

    envs = sub.add_parser("envs", help="cached provider envs")
    envs_sub = envs.add_subparsers(dest="envs_command", required=True, metavar="ACTION")
    envs_sub.add_parser("list", help="every cached env: key, provider, size, last used")
    prune = envs_sub.add_parser(
        "prune", help="remove envs that no given config uses, or unused for N days, and unused local wheels"
    )
    prune.add_argument("configs", nargs="*", metavar="CONFIG", help="run configs whose envs are kept")
    prune.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="only envs unused for DAYS")
    prune.add_argument("--dry-run", action="store_true", help="print what would be removed")

    specs = sub.add_parser("specs", help="provider specs shipped inside packages")
    specs_sub = specs.add_subparsers(dest="specs_command", required=True, metavar="ACTION")
    extract = specs_sub.add_parser("extract", help="copy the spec YAML a package ships into a providers.d tree")
    extract.add_argument("requirement", help="a pip requirement, e.g. lightspeed-stack-providers==0.6.3")
    extract.add_argument("--to", required=True, type=Path, help="the providers.d directory to copy into")
    extract.add_argument("--python-version", default="3.12", help="Python the release must support (default 3.12)")

    image = sub.add_parser("image", help="container images for the container launcher")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    image_build = image_sub.add_parser("build", help="build a provider's image: base + hostel-sdk + its packages")
    image_build.add_argument("config")
    image_build.add_argument("provider_id")
    image_build.add_argument("--tag", default=None, help="default: the provider's container_image, if set")
    image_build.add_argument("--base", default=None, help="an image with python3 (default python:3.11-slim)")
    image_build.add_argument("--engine", choices=["auto", "podman", "docker"], default=None)
    image_build.add_argument(
        "--bundle", type=Path, default=None, metavar="FILE",
        help="install the provider's locked pins from this `hostel pack` bundle, with no network",
    )  # fmt: skip

    python = sub.add_parser(
        "python",
        help="print the interpreter hostel takes for python: VERSION (e.g. uv venv --python $(hostel python 3.12))",
    )
    python.add_argument("version", help='a version ("3.12") or a path, as a provider entry\'s python: takes it')


def _host_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that run a host (``run``, ``call``) or talk to a running one."""
    run = sub.add_parser("run", help="start every provider and serve HTTP until SIGINT/SIGTERM")
    run.add_argument("config")
    run.add_argument("--port", type=int, default=None, help="default: server.port of the config, else 8321")
    run.add_argument("--host", default=None, dest="address", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--locked", action="store_true", help="install exactly the pins of hostel.lock")
    _env_file_option(run)
    run.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback --host without server.auth (only if something in front of hostel authenticates)",
    )
    run.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run every provider without a launcher of its own as a Ray actor on this cluster ('auto', 'local', "
        "'ray://head:10001', 'head:6379')",
    )

    ps = sub.add_parser("ps", help="status of a running host: states, pids, memory (RSS, PSS) and CPU time")
    client.add_client_options(ps)
    ps.add_argument("--json", action="store_true", help="print JSON")

    reload = sub.add_parser(
        "reload", help="make a running host re-read its run config (and --env-file) and apply what changed"
    )
    client.add_client_options(reload)
    for name, text in (
        ("restart", "restart one provider of a running host, rolling (re-arms a failed one)"),
        ("stop", "stop one provider of a running host until `hostel start` (calls in flight finish)"),
        ("start", "start a stopped, idle or failed provider of a running host"),
    ):
        operation = sub.add_parser(name, help=text)
        operation.add_argument("provider_id")
        client.add_client_options(operation)

    call = sub.add_parser("call", help="start a provider (and its deps), call one method, print the result as JSON")
    call.add_argument("config")
    call.add_argument("provider_id")
    call.add_argument("method")
    call.add_argument(
        "--args", default="{}", help="JSON object of keyword arguments (or a JSON array of positional ones)"
    )
    call.add_argument("--provider-data", default=None, help="JSON object of per-request provider data")
    call.add_argument("--timeout", type=float, default=None, help="call timeout in seconds")
    call.add_argument("--locked", action="store_true", help="install exactly the pins of hostel.lock")
    _env_file_option(call)


def _env_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        default=None,
        type=Path,
        help="a .env file of KEY=VALUE lines for ${env.NAME} and workers' env: (its values win; re-read on reload)",
    )


def _load(opts: argparse.Namespace) -> Plan:
    from hostel.config.envfile import environ_with
    from hostel.config.plan import load_plan

    return load_plan(opts.config, environ=environ_with(getattr(opts, "env_file", None)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = _parser()
    opts = parser.parse_args(argv)
    log_setup.configure(debug=opts.debug, lifecycle=opts.command == "run")
    try:
        return asyncio.run(_dispatch(opts))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        _error(str(exc), opts.debug)
        return 2
    except ConfigError as exc:
        _error(str(exc), opts.debug)
        return 2
    except HostelError as exc:
        _error(str(exc), opts.debug)
        return 1


def _error(message: str, debug: bool) -> None:
    if debug:
        logger.exception("error")
    print(f"hostel: error: {message}", file=sys.stderr)


async def _dispatch(opts: argparse.Namespace) -> int:
    from hostel.cli import envs as env_commands
    from hostel.cli import specs as spec_commands

    if opts.command == "build":
        if opts.bundle is not None and not opts.locked:
            raise UsageError("build --bundle installs a lock's pins: give --locked too")
        return await env_commands.build(opts.config, installer=opts.installer, locked=opts.locked, bundle=opts.bundle)
    if opts.command == "pack":
        from hostel.cli import pack as pack_command

        return await pack_command.pack(
            opts.config, opts.output, providers=opts.provider, interpreters=opts.interpreters
        )
    if opts.command == "lock":
        return await env_commands.lock(opts.config, installer=opts.installer)
    if opts.command == "envs":
        if opts.envs_command == "list":
            return env_commands.envs_list()
        if not opts.configs and opts.older_than is None:
            raise UsageError("envs prune: name the run configs whose envs to keep, or give --older-than DAYS")
        return await env_commands.envs_prune(opts.configs, older_than_days=opts.older_than, dry_run=opts.dry_run)
    if opts.command == "run":
        return await _run(opts)
    if opts.command == "ps":
        return client.ps(opts)
    if opts.command == "reload":
        return client.reload(opts)
    if opts.command in ("restart", "stop", "start"):
        return client.operate(opts)
    if opts.command == "image":
        return await _image_build(opts)
    if opts.command == "specs":
        copied = await spec_commands.extract(opts.requirement, opts.to, python_version=opts.python_version)
        if not copied:
            raise UsageError(f"{opts.requirement} ships no {{remote,inline}}/<api>/<name>.yaml provider specs")
        for path in copied:
            kind, api = path.parent.parent.name, path.parent.name
            print(f"{kind}::{path.stem:<32} {api:<14} {path}")
        print(f"point external_providers_dir at {opts.to}; fix what is stale with spec_overrides")
        return 0
    handler = {"check": _check, "list": _list, "call": _call, "python": _python}[opts.command]
    return await handler(opts)


async def _python(opts: argparse.Namespace) -> int:
    from hostel.envs.interpreters import InterpreterCache, InterpreterNotFoundError
    from hostel.envs.store import default_home

    try:
        found = await InterpreterCache(default_home()).find(opts.version)
    except InterpreterNotFoundError as exc:
        _error(str(exc), opts.debug)
        return 1
    print(found.path)
    return 0


async def _check(opts: argparse.Namespace) -> int:
    from hostel.cli import envs as env_commands

    plan = _load(opts)
    failures = await (env_commands.deep_check(plan) if opts.deep else env_commands.module_problems(plan))
    if failures:
        for message in failures:
            _error(message, opts.debug)
        return 2
    print(
        f"{opts.config}: OK ({len(plan.providers)} providers: "
        f"{', '.join(p.provider_id for p in plan.providers) or 'none'})"
    )
    return 0


async def _list(opts: argparse.Namespace) -> int:
    from hostel.envs import EnvManager

    plan = _load(opts)
    envs = EnvManager(installer=plan.settings.installer)
    rows = []
    for provider in plan.providers:
        status: str
        if provider.worker.launcher == "container":
            status = f"container image {provider.worker.container_image}"
        elif provider.worker.launcher == "ray":
            status = "ray runtime_env"
        else:
            try:
                status = envs.status(await envs.describe(provider))
            except HostelError as exc:
                status = f"error: {exc}"
        rows.append(
            {
                "provider_id": provider.provider_id,
                "api": provider.api,
                "provider_type": provider.provider_type,
                "env": status,
            }
        )
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        client.table(
            ["PROVIDER", "API", "TYPE", "ENV"],
            [[r["provider_id"], r["api"], r["provider_type"], r["env"]] for r in rows],
        )
    return 0


async def _run(opts: argparse.Namespace) -> int:
    from hostel.gateway import serving  # the HTTP stack loads only for `hostel run`
    from hostel.host import Host

    plan = _load(opts)
    if opts.ray:
        plan = plan.with_ray(opts.ray)
    address = opts.address or plan.config.server.host or "127.0.0.1"
    port = opts.port if opts.port is not None else plan.config.server.port
    host = Host(plan, locked=opts.locked, env_file=opts.env_file)
    await serving.serve(host, address=address, port=port, insecure=opts.insecure)
    return 0


async def _image_build(opts: argparse.Namespace) -> int:
    from hostel.envs import default_home, image
    from hostel.launch.container import find_engine

    plan = _load(opts)
    try:
        provider = plan.provider(opts.provider_id)
    except KeyError:
        known = ", ".join(p.provider_id for p in plan.providers) or "none"
        raise UsageError(f"no provider {opts.provider_id!r} in {opts.config}; providers: {known}") from None
    tag = opts.tag or provider.worker.container_image
    if not tag:
        raise UsageError(f"provider {opts.provider_id!r} has no container_image to build; name the image with --tag")
    settings = plan.settings.container
    if opts.engine:
        settings = settings.model_copy(update={"engine": opts.engine})
    try:
        engine = find_engine(settings)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    locked = None
    if opts.bundle is not None:
        from hostel.cli.envs import manager

        envs = manager(plan, locked=True, bundle=opts.bundle)
        assert envs.bundle is not None
        locked = image.Locked(await envs.describe(provider), envs.bundle)
    print(f"building {tag} for provider {provider.provider_id} with {engine}", file=sys.stderr)
    await image.build_image(
        provider, tag=tag, engine=engine, base=opts.base or image.DEFAULT_BASE, sdk_cache=default_home() / "wheels",
        locked=locked,
    )  # fmt: skip
    print(tag)
    return 0


async def _call(opts: argparse.Namespace) -> int:
    from hostel.host import Host
    from hostel_sdk._blobs import Blob

    try:
        arguments = json.loads(opts.args)
        provider_data = json.loads(opts.provider_data) if opts.provider_data else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--args / --provider-data must be JSON: {exc}") from None
    if not isinstance(arguments, (dict, list)):
        raise UsageError("--args must be a JSON object (keyword arguments) or array (positional arguments)")
    host = Host(_load(opts), locked=opts.locked)
    if opts.provider_id not in host.provider_ids:
        known = ", ".join(host.provider_ids) or "none"
        raise UsageError(f"no provider {opts.provider_id!r} in {opts.config}; providers: {known}")
    args, kwargs = (arguments, {}) if isinstance(arguments, list) else ([], arguments)
    try:
        await host.start([opts.provider_id])
        result = await host.call(
            opts.provider_id, opts.method, args, kwargs, timeout=opts.timeout, provider_data=provider_data
        )
        if hasattr(result, "__aiter__"):
            async for item in result:
                print(json.dumps(item, ensure_ascii=False), flush=True)
        elif isinstance(result, Blob):  # bytes, a file's content: as they are
            async for chunk in result.views():
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        else:
            print(json.dumps(result, ensure_ascii=False))
    finally:
        await host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
