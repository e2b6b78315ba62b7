"""The worker's second layer: what the kernel refuses it, whatever Python runs inside it.

The Python sandbox (policy, allow-lists, guards) decides what a block may *ask* for; this layer
decides what the process *can* do if a block ever gets past it. Applied once, after the model is
loaded and warmed up, and irreversible for the life of the process (and any child):

- **Landlock** (Linux >= 5.13, unprivileged): files can be read anywhere (lazy imports need
  it), but written, created, removed or renamed only inside the worker's scratch directory, and
  no file can be executed. From ABI 4 it also refuses TCP bind/connect, from ABI 6 signals and
  abstract unix sockets reaching outside the worker.
- **seccomp** (through the system's libseccomp, loaded with ctypes): no ``socket`` of any family,
  no ``execve``, no ``fork``/``clone`` other than a new thread, no ``ptrace``, namespaces or
  io_uring; Landlock filters by path, not by syscall class, so it cannot refuse UDP or a fork.
- **rlimits**: address space, CPU seconds, open files, file size, no core dumps.

Why these two and not bubblewrap or nsjail: both of those need user namespaces (often disabled in
containers and on hardened hosts) and wrap the process from outside, before the model loads;
Landlock and seccomp need no privileges, no extra binaries and no namespaces, and are applied by
the worker to itself *after* loading, so the weights and libraries are read with full access and
the job runs with none. Where the kernel lacks one, the worker says so loudly on stderr and on
``/health`` instead of pretending.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
import sys
from dataclasses import dataclass, field

# -- Landlock (linux/landlock.h) ---------------------------------------------------------------

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | (1 << 14) | (1 << 15)  # on a file, not a dir
_NET_TCP = (1 << 0) | (1 << 1)  # bind, connect
_SCOPES = (1 << 0) | (1 << 1)  # abstract unix sockets, signals


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: object) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is missing or disabled."""
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except OSError:
        return 0


def _fs_rights(abi: int) -> int:
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]


def apply_landlock(scratch: str, abi: int) -> list[str]:
    """Restrict this process as the module docstring says; what it covers, in words."""
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled, _NET_TCP if abi >= 4 else 0, _SCOPES if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    try:
        _allow(ruleset, "/", READ_FILE | READ_DIR)
        _allow(ruleset, scratch, handled & ~EXECUTE)
        _allow(ruleset, "/dev/null", READ_FILE | WRITE_FILE)
        _syscall(_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    covered = ["file writes outside the scratch directory", "executing files"]
    if abi >= 4:
        covered.append("TCP connect/bind")
    if abi >= 6:
        covered.append("signals and abstract sockets beyond the worker")
    return covered


def _allow(ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not os.path.isdir(path):
            rights &= _FILE_ONLY
        rule = _PathBeneath(rights, fd)
        _syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)


# -- seccomp, through libseccomp ---------------------------------------------------------------

_ALLOW = 0x7FFF0000
_CMP_MASKED_EQ = 7
_CLONE_THREAD = 0x00010000


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


DENIED_SYSCALLS = (
    "socket", "socketpair", "execve", "execveat", "fork", "vfork", "ptrace",
    "process_vm_writev", "unshare", "setns",
    # io_uring runs socket/connect/open operations that no syscall filter sees
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip


def load_libseccomp() -> ctypes.CDLL:
    """The system's libseccomp (found before Landlock: finding it runs ldconfig)."""
    name = ctypes.util.find_library("seccomp")
    if name is None:
        raise OSError(errno.ENOENT, "libseccomp is not installed (Debian: libseccomp2)")
    return ctypes.CDLL(name, use_errno=True)


def apply_seccomp(lib: ctypes.CDLL) -> list[str]:
    """Refuse sockets, exec and new processes (threads stay allowed); what it covers."""
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
    ]  # fmt: skip
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(_ALLOW)
    if not context:
        raise OSError(errno.EINVAL, "seccomp_init failed")
    try:

        def rule(syscall: str, code: int, *compare: _ArgCmp) -> None:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                return  # not on this architecture (fork/vfork on arm64)
            array = (_ArgCmp * len(compare))(*compare) if compare else None
            result = lib.seccomp_rule_add_array(
                context, _errno_action(code), number, len(compare), array
            )
            if result < 0:
                raise OSError(-result, f"seccomp rule for {syscall}: {os.strerror(-result)}")

        for syscall in DENIED_SYSCALLS:
            rule(syscall, errno.EPERM)
        # clone() for a new thread is allowed; for a new process it is not.
        rule("clone", errno.EPERM, _ArgCmp(0, _CMP_MASKED_EQ, _CLONE_THREAD, 0))
        rule("clone3", errno.ENOSYS)  # its flags sit in memory: make libc fall back to clone()
        result = lib.seccomp_load(context)
        if result < 0:
            raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")
    finally:
        lib.seccomp_release(context)
    return ["sockets", "exec", "new processes"]


# -- rlimits -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Resource limits of one worker process (0: pick from what the worker already uses)."""

    memory_bytes: int = 0
    cpu_seconds: int = 24 * 3600
    open_files: int = 512
    file_bytes: int = 256 * 1024 * 1024


def address_space() -> int:
    """Bytes of address space this process maps now."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply_rlimits(budget: Budget) -> dict[str, int]:
    """Set the limits; each value set, by name (hard = soft: a block cannot raise them)."""
    used_cpu = int(resource.getrusage(resource.RUSAGE_SELF).ru_utime) + 1
    memory = budget.memory_bytes or address_space() + max(8 << 30, address_space())
    limits = {
        "memory (address space)": (resource.RLIMIT_AS, memory),
        "CPU seconds": (resource.RLIMIT_CPU, used_cpu + budget.cpu_seconds),
        "open files": (resource.RLIMIT_NOFILE, budget.open_files),
        "file size": (resource.RLIMIT_FSIZE, budget.file_bytes),
        "core dump size": (resource.RLIMIT_CORE, 0),
    }
    for kind, value in limits.values():
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))
    return {name: value for name, (_, value) in limits.items()}


# -- all of it --------------------------------------------------------------------------------


@dataclass
class Report:
    """What the worker is confined by, and what it could not be."""

    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)

    def as_info(self) -> dict[str, object]:
        return {"confined": self.covered, "missing": self.missing, "limits": self.limits}


def confine(scratch: str, budget: Budget) -> Report:
    """Apply every layer this kernel offers; warn loudly on stderr about each it lacks."""
    report = Report()
    report.limits = apply_rlimits(budget)
    if ctypes.CDLL(None).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        report.missing.append("no_new_privs (so neither Landlock nor seccomp)")
        _warn(report)
        return report
    try:
        libseccomp: ctypes.CDLL | OSError = load_libseccomp()
    except OSError as error:
        libseccomp = error
    abi = landlock_abi()
    if abi:
        try:
            report.covered += apply_landlock(scratch, abi)
        except OSError as error:
            report.missing.append(f"Landlock ({error}): file writes and exec are NOT confined")
    else:
        report.missing.append(
            "Landlock (this kernel lacks it or it is disabled): file writes and exec are NOT "
            "confined"
        )
    try:
        if isinstance(libseccomp, OSError):
            raise libseccomp
        report.covered += apply_seccomp(libseccomp)
    except OSError as error:
        report.missing.append(f"seccomp ({error}): sockets and new processes are NOT confined")
    _warn(report)
    return report


def _warn(report: Report) -> None:
    for missing in report.missing:
        print(
            f"\n[lenslab] WARNING: the model worker runs WITHOUT {missing}. Only the Python "
            "sandbox stands between remote code and this machine.\n",
            file=sys.stderr,
            flush=True,
        )
