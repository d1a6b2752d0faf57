"""Serve guardrails (TrustyAI FMS and lightspeed's redaction shield, from PyPI) with `hostel run`, or inside an
OGX server, and use them with the unmodified llama-stack-client 0.7.5 and openai clients.

    python examples/guardrails/main.py [--client-python PATH] [--ogx PATH_TO_OGX]

Starts the stand-in FMS detector (loopback), then the server on a free loopback port: `hostel run run.yaml`, or
with --ogx `ogx run ogx/ogx.yaml` (OGX with hostel installed in its venv, serving the Safety API as an external
one, and naming its own /v1/moderations as its Responses provider's moderation_endpoint); runs client.py, restarts
the server and runs it again (registrations persist), and with --ogx makes a Responses call with guardrails.
Prints what the client prints; stops everything.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_DETECTOR = HERE.parent / "pypi_providers" / "fake_detector.py"
CLIENTS = ["llama-stack-client==0.7.5", "openai>=1.100"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_python() -> Path:
    """A Python 3.12 venv with llama-stack-client 0.7.5 and openai, made once under $HOSTEL_HOME/clients."""
    import asyncio

    import uv

    from hostel.envs.interpreters import InterpreterCache
    from hostel.envs.store import default_home

    venv = default_home() / "clients" / "guardrails"
    python = venv / "bin" / "python"
    if not python.exists():
        # Found where hostel finds a provider's `python: "3.12"`: PATH, pyenv, uv's own.
        python312 = asyncio.run(InterpreterCache(venv.parent).find("3.12")).path
        subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", python312, str(venv)], check=True)
        subprocess.run([uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(python), *CLIENTS], check=True)
    return python


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout  # the first start builds both envs from PyPI
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}; see its output above")
        try:
            with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer /v1/health within {timeout:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client-python", type=Path, help="a Python with llama-stack-client 0.7.5 and openai")
    parser.add_argument("--ogx", type=Path, help="serve with this `ogx` (its venv has hostel) instead of hostel run")
    opts = parser.parse_args()
    python = opts.client_python or client_python()
    detector = subprocess.Popen([sys.executable, str(FAKE_DETECTOR), "--port", "0"], stdout=subprocess.PIPE)
    assert detector.stdout is not None
    detector_url = detector.stdout.readline().decode().split(" on ", 1)[1].strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="hostel-guardrails-") as tmp:
        env = {**os.environ, "FMS_DETECTOR_URL": detector_url, "PORT": str(port), "SQLITE_STORE_DIR": tmp}
        if opts.ogx:
            command, cwd = [str(opts.ogx), "run", "ogx.yaml", "--insecure"], HERE / "ogx"
        else:
            command, cwd = [sys.executable, "-m", "hostel", "run", str(HERE / "run.yaml"), "--port", str(port)], HERE
        phases = [["first"], ["again", *(["responses"] if opts.ogx else [])]]  # a restart between the two
        try:
            for run in phases:
                server = subprocess.Popen(command, cwd=cwd, env=env)
                try:
                    wait_healthy(url, server)
                    for phase in run:
                        done = subprocess.run([str(python), str(HERE / "client.py"), url, phase], check=False)
                        if done.returncode != 0:
                            return done.returncode
                finally:
                    server.terminate()
                    server.wait(timeout=60)
        finally:
            detector.terminate()
            detector.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
