"""The worker's optional sandbox: Landlock and resource limits, applied by the worker to itself at start.

Unprivileged and in-process, so it costs microseconds: ``no_new_privs``, then a Landlock domain allowing
reads of the venv, the interpreter and what the system's libraries need; reads and writes of the worker's
own directory (its socket and private tmp) and the paths its entry declares; nothing else on the
filesystem. Where the kernel's Landlock has them: TCP connect and bind only to the declared ports
(Landlock filters TCP by port, not by address; UDP, and so DNS, is not covered), and no signals to, nor
abstract sockets of, processes outside the domain. Applied before any thread starts, since a Landlock
domain binds the calling thread and the threads it creates from then on.

The start request's ``sandbox`` key asks for it; ``limits`` (open files, processes, CPU seconds) apply
with or without it. A kernel without Landlock fails the start when the sandbox was asked for: never a
silent no-op.

A sandboxed provider's processes apply it before any byte of its venv runs: the host starts the interpreter
without ``site`` (``python -S -c``) on this module's source as the host has it, followed by
``confined_main()``, which confines the process, then imports ``site`` (the venv's ``.pth`` files run here,
inside) and runs the module it was given. So this module imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import sys
from collections.abc import Iterable, Mapping
from typing import Any

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights by the Landlock ABI that introduced them.
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1_FS = (1 << 13) - 1  # execute ... make_sym
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # what a rule on a file may grant
_NET_BIND, _NET_CONNECT = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ = _EXECUTE | _READ_FILE | _READ_DIR

_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = 4096, 16384, 1 << 18, 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}  # pivot_root(2) has no glibc wrapper: the syscall, by machine
# Bound whole into a private root: the Landlock rules below decide which of their files may be read.
_WHOLE = ("/proc", "/dev", "/sys")

# What a Python worker reads outside its venv and interpreter (missing ones are skipped).
SYSTEM_READ = (
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin",
    "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
    "/etc/host.conf", "/etc/gai.conf", "/etc/localtime", "/etc/timezone", "/etc/passwd", "/etc/group",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/mime.types", "/etc/os-release",
    "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu", "/sys/fs/cgroup",
    "/dev/urandom", "/dev/random",
)  # fmt: skip
SYSTEM_WRITE = ("/dev/null", "/dev/zero", "/dev/full")
_SHM = "/dev/shm"


class SandboxError(Exception):
    """The sandbox that was asked for cannot be set up here (the message says why and what to do)."""


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 without Landlock."""
    if not sys.platform.startswith("linux"):
        return 0
    abi = int(_libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION))
    return max(abi, 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = (("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64))  # fmt: skip


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPort(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


def _fail(what: str) -> SandboxError:
    err = ctypes.get_errno()
    return SandboxError(f"{what}: {os.strerror(err)} (errno {err})")


def apply_limits(limits: Mapping[str, Any]) -> None:
    """``limits.open_files`` / ``processes`` / ``cpu_seconds`` as rlimits (soft and hard)."""
    for key, which in (
        ("open_files", resource.RLIMIT_NOFILE),
        ("processes", resource.RLIMIT_NPROC),
        ("cpu_seconds", resource.RLIMIT_CPU),
    ):
        value = limits.get(key)
        if value:
            resource.setrlimit(which, (int(value), int(value)))


def restrict(
    *,
    read: Iterable[str],
    write: Iterable[str],
    connect_ports: Iterable[int] | None,
    abi: int | None = None,
) -> int:
    """Confine this process (from this thread on) with Landlock; return the ABI used.

    ``read``/``write``: paths allowed besides the system's; ``connect_ports``: ``None`` leaves TCP alone,
    a list allows TCP connect to those ports only (an empty list: no TCP), and no TCP bind.
    """
    abi = landlock_abi() if abi is None else abi
    if abi < 1:
        raise SandboxError(
            "this kernel has no Landlock (Linux 5.13+ with landlock in the boot's lsm= list); "
            "run the provider without sandbox:, or on a kernel that has it"
        )
    if connect_ports is not None and abi < 4:
        raise SandboxError(
            f"this kernel's Landlock (ABI {abi}) cannot filter TCP (needs ABI 4, Linux 6.7); drop network:"
        )
    handled_fs = (
        _ABI1_FS | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0) | (_IOCTL_DEV if abi >= 5 else 0)
    )
    attr = _RulesetAttr(
        handled_fs,
        (_NET_BIND | _NET_CONNECT) if connect_ports is not None else 0,
        (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    libc = _libc()
    ruleset = int(libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    try:
        for path in SYSTEM_READ:
            _allow(libc, ruleset, path, _READ, required=False)
        for path in read:
            _allow(libc, ruleset, path, _READ, required=True)
        for path in SYSTEM_WRITE:
            _allow(libc, ruleset, path, _READ_FILE | _WRITE_FILE, required=False)
        for path in write:
            _allow(libc, ruleset, path, handled_fs, required=True)
        for port in connect_ports or ():
            rule = _NetPort(_NET_CONNECT, int(port))
            if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, ctypes.byref(rule), 0) != 0:
                raise _fail(f"allowing TCP port {port}")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise _fail("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _allow(libc: Any, ruleset: int, path: str, access: int, *, required: bool) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if required:
            raise SandboxError(f"cannot open {path!r} to allow it: {exc.strerror}") from None
        return
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS
        rule = _PathBeneath(access, fd)
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise _fail(f"allowing {path!r}")
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def apply(request: Mapping[str, Any]) -> int:
    """The start request's ``sandbox``: ``{"read": [...], "write": [...], "connect_ports": [...] | None}``, and
    with ``root`` (an empty directory of its own to build it in) a private root first, which holds only those
    paths and the ``sockets`` named (see ``private_root``). ``private_shm``: this process lives in a private
    root already (forked from a zygote that made one), whose ``/dev/shm`` it may write.

    The venv and the interpreter this worker runs are always readable."""
    read = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    read.update(request.get("read") or ())
    write = list(request.get("write") or ())
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file: it would hold the provider's secrets
    if request.get("root"):
        keep = [*SYSTEM_READ, *SYSTEM_WRITE, *read, *write, *(request.get("sockets") or ())]
        if private_root(request["root"], keep):
            write.append(_SHM)
    elif request.get("private_shm"):  # forked from a zygote in a private root: its /dev/shm is that provider's own
        write.append(_SHM)
    return restrict(read=sorted(read), write=write, connect_ports=request.get("connect_ports"))


def private_root(root: str, keep: Iterable[str]) -> bool:
    """Make this process's ``/`` a tmpfs holding only ``keep`` (each bound at its own path; ``/proc``, ``/dev``
    and ``/sys`` whole), in a user and mount namespace of its own: a named Unix socket anywhere else (the
    container engine's, an ssh agent's, D-Bus) is not there to connect to. Landlock cannot refuse ``connect``
    on a pathname socket before its ABI 8; this is what does it meanwhile. Must run before any thread starts
    and before ``restrict`` (a Landlock domain may not change mounts).

    ``/dev/shm`` becomes an empty tmpfs of its own, where ``multiprocessing`` makes its semaphores: whether it
    did is returned, so that the caller lets the process write there (the machine's ``/dev/shm`` holds every
    other process's shared memory, and stays out of reach).
    """
    machine = os.uname().machine
    if machine not in _PIVOT_ROOT:
        raise SandboxError(f"a private root is not implemented on {machine}; set sandbox: {{unix_sockets: any}}")
    libc = _libc()
    uid, gid, cwd = os.getuid(), os.getgid(), os.getcwd()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise SandboxError(
            f"cannot hide the machine's named Unix sockets from it: unshare(CLONE_NEWUSER) failed: "
            f"{os.strerror(err)} (unprivileged user namespaces are off here, e.g. by sysctl or AppArmor), and this "
            f"kernel's Landlock (ABI {landlock_abi()}) cannot refuse them (needs ABI 8); allow user namespaces, "
            f"or set sandbox: {{unix_sockets: any}} to run it without this"
        )
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as out:
            out.write(text)

    def mount(source: str | None, target: str, kind: str | None, flags: int, what: str) -> None:
        if libc.mount(_c(source), _c(target), _c(kind), ctypes.c_ulong(flags), None) != 0:
            raise _fail(what)

    mount(None, "/", None, _MS_REC | _MS_PRIVATE, "making the mounts private")
    os.makedirs(root, exist_ok=True)
    mount("tmpfs", root, "tmpfs", 0, f"mounting a tmpfs on {root}")
    bound: list[str] = []
    for path in sorted({_whole(p) for p in keep}):
        if any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound) or not os.path.exists(path):
            continue  # inside what is bound already, or missing
        target = root + path
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()  # a file to bind over
        mount(path, target, None, _MS_BIND | _MS_REC, f"binding {path}")
        bound.append(path)
    private_shm = os.path.isdir(root + _SHM)
    if private_shm:
        mount("tmpfs", root + _SHM, "tmpfs", 0, f"mounting a private {_SHM}")
    # Its working directory stays where it is, as an empty directory if nothing in it is kept: relative paths into
    # what is kept (a writable ./data) resolve as before.
    os.makedirs(root + cwd, exist_ok=True)
    old = os.path.join(root, ".old")
    os.mkdir(old)
    if libc.syscall(_PIVOT_ROOT[machine], _c(root), _c(old)) != 0:
        raise _fail("pivot_root")
    os.chdir("/")
    if libc.umount2(_c("/.old"), _MNT_DETACH) != 0:
        raise _fail("detaching the old root")
    os.rmdir("/.old")
    # The directory the root was built in may be among what it keeps (its own directory): not a view of itself.
    libc.umount2(_c(root), _MNT_DETACH)
    with contextlib.suppress(OSError):
        os.chdir(cwd)  # where it ran, if it is among what it keeps
    return private_shm


def _whole(path: str) -> str:
    return next((w for w in _WHOLE if path == w or path.startswith(w + "/")), path)


def _c(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def confined_main() -> None:
    """``python -S -c SOURCE POLICY MODULE ARGS...``: confine this process by ``POLICY`` (JSON: ``sandbox``,
    ``limits``, ``failure``), then import ``site`` and run ``MODULE`` as ``python -m MODULE ARGS...`` would.

    If the sandbox cannot be set up, ``failure`` with ``{message}`` replaced by the reason (JSON-quoted) is
    printed on stdout (the line the host reads), and the process exits 1 without running the venv's code.
    """
    policy = json.loads(sys.argv[1])
    module, args = sys.argv[2], sys.argv[3:]
    try:
        apply_limits(policy.get("limits") or {})
        apply(policy["sandbox"])
    except (SandboxError, OSError, ValueError) as exc:
        print(policy["failure"].replace("{message}", json.dumps(f"sandbox: {exc}")), flush=True)
        sys.exit(1)
    import runpy
    import site

    site.main()  # the venv's site-packages and its .pth files: from here on, inside the sandbox
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
