"""Serve TrustyAI LM-Eval and ragas with `hostel run` (or inside an OGX server) and drive them with
llama-stack-client 0.7.5.

    python examples/eval_providers/main.py [--client-python PATH] [--ogx PATH_TO_OGX]

Starts the stand-in Kubernetes API lmeval submits its jobs to (loopback), then the server on a free
loopback port: `hostel run run.yaml`, or with --ogx `ogx run ogx/ogx.yaml` (OGX with hostel installed in its
venv, serving these APIs as external ones), then `client.py` under llama-stack-client 0.7.5 on Python 3.12 (a
venv made with uv under $HOSTEL_HOME/clients unless --client-python names one); prints what the client
prints; stops everything.
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
FAKE_KUBERNETES = HERE.parent / "pypi_providers" / "fake_kubernetes.py"
CLIENT = "llama-stack-client==0.7.5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_python() -> Path:
    """A Python 3.12 venv with llama-stack-client 0.7.5 (the last release with alpha.eval), made once."""
    import asyncio

    import uv

    from hostel.envs.interpreters import InterpreterCache
    from hostel.envs.store import default_home

    venv = default_home() / "clients" / "llama-stack-client-0.7.5"
    python = venv / "bin" / "python"
    if not python.exists():
        # Found where hostel finds a provider's `python: "3.12"`: PATH, pyenv, uv's own.
        python312 = asyncio.run(InterpreterCache(venv.parent).find("3.12")).path
        subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", python312, str(venv)], check=True)
        subprocess.run([uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(python), CLIENT], check=True)
    return python


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout  # the first start builds both envs from PyPI
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"hostel run exited with code {server.returncode}; see its output above")
        try:
            with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"hostel run did not answer /v1/health within {timeout:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client-python", type=Path, help="a Python with llama-stack-client 0.7.5 installed")
    parser.add_argument("--ogx", type=Path, help="serve with this `ogx` (its venv has hostel) instead of hostel run")
    opts = parser.parse_args()
    python = opts.client_python or client_python()
    with tempfile.TemporaryDirectory(prefix="hostel-eval-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig.yaml"
        kubernetes = subprocess.Popen(
            [sys.executable, str(FAKE_KUBERNETES), "--port", "0", "--kubeconfig", str(kubeconfig)],
            stdout=subprocess.PIPE,
        )
        assert kubernetes.stdout is not None and b"fake Kubernetes API" in kubernetes.stdout.readline()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        if opts.ogx:
            server = subprocess.Popen(
                [str(opts.ogx), "run", "ogx.yaml", "--insecure"],
                cwd=HERE / "ogx",
                env={**env, "PORT": str(port), "SQLITE_STORE_DIR": tmp},
            )
        else:
            server = subprocess.Popen(
                [sys.executable, "-m", "hostel", "run", str(HERE / "run.yaml"), "--port", str(port)], env=env
            )
        try:
            wait_healthy(url, server)
            return subprocess.run([str(python), str(HERE / "client.py"), url], check=False).returncode
        finally:
            for process in (server, kubernetes):
                process.terminate()
                process.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
