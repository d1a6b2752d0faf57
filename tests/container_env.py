"""A container engine the tests (and bench/bench_launchers.py) can use here, or the reason there is none.

No registry is reachable from this machine but PyPI and Debian, so the base image (Debian bookworm with
python3) is made with debootstrap and ``podman import``, once per machine. The sandbox refuses crun's cgroup
and rlimit setup, so a ``containers.conf`` selects runc and ulimits the host already has. The base image also
gets the host's CA bundle, so pip inside ``hostel image build`` trusts the same registry proxy the host does.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

BASE_IMAGE = "localhost/hostel-test-python:bookworm"
_CONF = Path(tempfile.gettempdir()) / "hostel-test-containers.conf"
_MIRROR = "http://deb.debian.org/debian"


def _podman(*args: str, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def containers_conf() -> Path:
    """Write (and return) a containers.conf that runs containers in this sandbox."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    lines = ["[containers]", f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]']
    if shutil.which("runc"):
        lines += ["[engine]", 'runtime = "runc"']
    _CONF.write_text("\n".join(lines) + "\n")
    return _CONF


def _base_image() -> str | None:
    """Make the base image if it is missing; the reason it cannot be made, or None."""
    if _podman("image", "exists", BASE_IMAGE).returncode == 0:
        return None
    if not shutil.which("debootstrap"):
        return "debootstrap is not installed (apt-get install debootstrap) to make the base image"
    with tempfile.TemporaryDirectory(prefix="hostel-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs), _MIRROR],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            return f"debootstrap failed: {done.stderr[-500:]}"
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        done = _podman("import", "--quiet", "-", BASE_IMAGE, stdin=tar.stdout)
        tar.wait()
        if done.returncode != 0:
            return f"podman import failed: {done.stderr[-500:]}"
    return None


def engine_unavailable() -> str | None:
    """Set CONTAINERS_CONF and make the base image; why containers cannot run here, or None if they can."""
    if not shutil.which("podman"):
        return "podman is not installed (apt-get install podman runc debootstrap)"
    os.environ["CONTAINERS_CONF"] = str(containers_conf())
    reason = _base_image()
    if reason:
        return reason
    done = _podman("run", "--rm", BASE_IMAGE, "python3", "-c", "print('ok')", timeout=120)
    if done.returncode != 0 or "ok" not in done.stdout:
        return f"podman cannot run a container here: {done.stderr.strip()[-500:]}"
    return None
