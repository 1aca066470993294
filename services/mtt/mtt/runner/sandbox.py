"""The bubblewrap sandbox task commands run in (user code is untrusted).

Inside: a fresh mount namespace with /usr (and the runner's Python prefixes) read-only, a generated /etc, a
private /proc of its own pid namespace, a minimal /dev, tmpfs /tmp, and the attempt's folders at /mlife/work:
`code` (cwd) `out` and `home` writable, `data` and `model` read-only; the SDK at /mlife/sdk. No $MLIFE_HOME, no
database or object-store folder, no other task's work dir, no network (`sandbox_network=none`), no credential:
the command reports only through files in its output folder, which the runner collects after it ended.
The command runs as an unprivileged uid (one per runner slot) with no capabilities, `no_new_privs`, and rlimits
on address space, CPU seconds, processes and file size; the runner's wall-clock timeout stays on top.

bwrap runs as root without a user namespace, sets up the mounts, and `setpriv` drops to the task uid inside;
a runner that is not root uses bwrap's user namespace (`--unshare-user --uid`) instead."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import structlog

from mlife_shared.plugins.seams.runners import Limits, ProcessSpec, RunnerUnavailable, RunningProcess
from mtt.runner.backends import _Subprocess
from mtt.runner.result import RunFailed

log = structlog.get_logger(__name__)

SANDBOX_WORKDIR = "/mlife/work"
SANDBOX_SDK = "/mlife/sdk"
# the attempt's folders the command sees: (name, writable)
WORK_MOUNTS = (("code", True), ("out", True), ("home", True), ("data", False), ("model", False))
TASK_USER = "task"
# How long an ended attempt waits for the last processes of its pid namespace to be gone (the kernel kills them
# asynchronously once the namespace's init is gone); past it the runner goes on with a warning.
RELEASE_SECONDS = 10.0


class SandboxUnavailable(RunFailed, RunnerUnavailable):
    """This runner cannot run user code: no sandbox, and no explicit opt-out."""


def prlimit_args(limits: Limits) -> list[str]:
    mib = 1024 * 1024
    return [f"--as={limits.memory_mb * mib}", f"--cpu={limits.cpu_seconds}", f"--nproc={limits.processes}",
            f"--fsize={limits.file_mb * mib}", "--core=0"]


def find_binary(name_or_path: str) -> str | None:
    """An executable file: a path as given, or a bare name looked up in PATH."""
    if os.sep in name_or_path:
        return name_or_path if os.path.isfile(name_or_path) and os.access(name_or_path, os.X_OK) else None
    return shutil.which(name_or_path)


def missing_bwrap(path: str) -> str:
    return (f"this runner cannot run task code: bubblewrap ({path!r}) is not installed. Install it (Debian/Ubuntu: "
            "`apt-get install bubblewrap`; `make up` does it) or point MLIFE_MTT_BWRAP_PATH at it; or opt out "
            "explicitly, on a machine only trusted users reach: MLIFE_MTT_SANDBOX=none and "
            "MLIFE_MTT_ALLOW_UNSANDBOXED=true")


def python_prefixes() -> list[Path]:
    """Folders the runner's interpreter needs (a venv and its base installation), as real paths."""
    out: list[Path] = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        real = Path(os.path.realpath(p))
        if real.is_dir() and real not in out:
            out.append(real)
    return out


def prepare_workdir(work: Path, uid: int | None) -> None:
    """The writable folders owned by the task user, the read-only inputs readable by it (whatever the umask)."""
    for name, writable in WORK_MOUNTS:
        folder = work / name
        if name in ("code", "out", "home"):
            folder.mkdir(exist_ok=True)
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder):
            for entry in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                if os.path.islink(entry):
                    continue
                if writable and uid is not None:
                    os.chown(entry, uid, uid)
                elif not writable:
                    mode = os.stat(entry).st_mode
                    os.chmod(entry, mode | 0o444 | (0o111 if os.path.isdir(entry) else 0))


def write_etc(folder: Path, uid: int, network: str) -> Path:
    """A minimal /etc: the task user, localhost, and (host network only) DNS and CA certificates."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "passwd").write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                   f"{TASK_USER}:x:{uid}:{uid}:MLife task:{SANDBOX_WORKDIR}/home:/bin/sh\n")
    (folder / "group").write_text(f"root:x:0:\n{TASK_USER}:x:{uid}:\n")
    (folder / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (folder / "hostname").write_text("mlife-task\n")
    (folder / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    if os.path.isfile("/etc/ld.so.cache"):
        shutil.copyfile("/etc/ld.so.cache", folder / "ld.so.cache")
    if network == "host":
        if os.path.isfile("/etc/resolv.conf"):
            shutil.copyfile("/etc/resolv.conf", folder / "resolv.conf")
        (folder / "ssl").mkdir(exist_ok=True)
    for p in folder.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    folder.chmod(0o755)
    return folder


class _Mounts:
    """bwrap's mount arguments: each target once, its parent folders made first."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.made: set[str] = {"/", "/usr", "/tmp", "/proc", "/dev", "/etc"}

    def _parents(self, target: str) -> None:
        for p in reversed(list(Path(target).parents)):
            s = str(p)
            if s not in self.made:
                self.made.add(s)
                self.args.extend(["--perms", "0755", "--dir", s])

    def mount(self, src: Path, dest: str, writable: bool) -> None:
        if dest in self.made or any(dest.startswith(m + "/") for m in ("/usr", "/proc", "/dev")):
            return
        self._parents(dest)
        self.made.add(dest)
        self.args.extend(["--bind" if writable else "--ro-bind", str(src), dest])


class BwrapBackend:
    name = "bwrap"
    workdir_inside: str | None = SANDBOX_WORKDIR
    notice: str | None = None

    def __init__(self, bwrap: str, *, network: str, uid_for_slot: Callable[[int], int], limits: Limits,
                 ro_paths: list[Path] | None = None, sdk_dir: Path | None = None) -> None:
        self.bwrap = bwrap
        self.network = network
        self.uid_for_slot = uid_for_slot
        self.limits = limits
        self.ro_paths = list(ro_paths or [])
        self.sdk_dir = sdk_dir

    def argv(self, spec: ProcessSpec, uid: int, etc: Path, tools: dict[str, str]) -> list[str]:
        root = os.geteuid() == 0
        mounts = _Mounts(self._namespace_args(tools["bwrap"], uid, root))
        mounts.args += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64",
                        "/lib64", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                        "--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--tmpfs", "/dev/shm",
                        "--perms", "01777", "--tmpfs", "/tmp", "--ro-bind", str(etc), "/etc"]
        if self.network == "host" and os.path.isdir("/etc/ssl"):
            mounts.args += ["--ro-bind", "/etc/ssl", "/etc/ssl"]
        for p in [*python_prefixes(), *self.ro_paths]:
            mounts.mount(p, str(p), False)
        if self.sdk_dir is not None:
            mounts.mount(self.sdk_dir, f"{SANDBOX_SDK}/mlife", False)
        for name, writable in WORK_MOUNTS:
            if (spec.workdir / name).is_dir():
                mounts.mount(spec.workdir / name, f"{SANDBOX_WORKDIR}/{name}", writable)
        cwd = f"{SANDBOX_WORKDIR}/{spec.cwd.relative_to(spec.workdir).as_posix()}"
        args = [*mounts.args, "--chdir", cwd, "--", tools["prlimit"], *prlimit_args(self.limits), "--"]
        if root:
            args += [tools["setpriv"], f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                     "--bounding-set=-all", "--no-new-privs", "--"]
        return args + spec.argv

    def _namespace_args(self, bwrap: str, uid: int, root: bool) -> list[str]:
        args = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--hostname", "mlife-task"]
        if self.network == "none":
            args.append("--unshare-net")
        if not root:  # an unprivileged runner: bwrap's user namespace maps the runner's uid to the task uid
            args += ["--unshare-user", "--uid", str(uid), "--gid", str(uid), "--cap-drop", "ALL"]
        return args

    def tools(self) -> dict[str, str]:
        bwrap = find_binary(self.bwrap)
        if bwrap is None:
            raise SandboxUnavailable(missing_bwrap(self.bwrap))
        out = {"bwrap": bwrap}
        for tool in ("prlimit", "setpriv"):  # util-linux; they run inside, so they must live under /usr
            found = shutil.which(tool, path="/usr/bin:/usr/sbin")
            if found is None:
                raise SandboxUnavailable(f"this runner cannot run task code: {tool} (util-linux) is missing "
                                         "from /usr/bin")
            out[tool] = found
        return out

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        tools = self.tools()
        uid = self.uid_for_slot(spec.slot)
        if uid <= 0:
            raise SandboxUnavailable("the sandbox uid must not be root")
        owner = uid if os.geteuid() == 0 else None
        await asyncio.to_thread(prepare_workdir, spec.workdir, owner)
        etc = await asyncio.to_thread(write_etc, spec.workdir / "sandbox-etc", uid, self.network)
        proc = await asyncio.create_subprocess_exec(
            *self.argv(spec, uid, etc, tools), env=spec.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        sandboxed = _Sandboxed(proc, spec.kill_grace_seconds)
        await sandboxed.find_namespace()
        return sandboxed


def members_of(namespace: str, but: str | None = None) -> list[int]:
    """Host pids of the processes in a pid namespace (`pid:[inode]`), `but` one pid excluded."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != but:
            with suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    out.append(int(entry))
    return out


class _Sandboxed(_Subprocess):
    """bwrap's own process: when it ends, its pid namespace (the command and all it started) is killed."""

    def __init__(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        super().__init__(proc, grace)
        self.init: str | None = None  # the host pid of the namespace's init (bwrap's child)
        self.namespace: str | None = None

    async def find_namespace(self) -> None:
        """bwrap's child (the namespace's init) and its pid namespace, as soon as bwrap has cloned it."""
        deadline = time.monotonic() + 5
        while self.namespace is None and self.proc.returncode is None and time.monotonic() < deadline:
            with suppress(OSError, IndexError):
                init = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()[0]
                namespace = os.readlink(f"/proc/{init}/ns/pid")
                if namespace != os.readlink("/proc/self/ns/pid"):  # never the runner's own
                    self.namespace, self.init = namespace, init
                    return
            await asyncio.sleep(0.005)

    def _members(self) -> list[int]:
        """Host pids of the processes inside the sandbox's pid namespace, its init excluded."""
        return members_of(self.namespace, but=self.init) if self.namespace else []

    async def _released(self) -> None:
        """Wait until the namespace has no process left. Killing a namespace is asynchronous, and what is still
        dying counts against the next attempt's process limit (RLIMIT_NPROC is per uid, the slot's uid is reused):
        a fork bomb started right after a task that left 23 children could not fork once and ended with code 2.
        (A namespace id can be reused once freed; a new sandbox under the old id only makes this wait longer,
        bounded by RELEASE_SECONDS.)"""
        if self.namespace is None:
            return
        deadline = time.monotonic() + RELEASE_SECONDS
        while left := await asyncio.to_thread(members_of, self.namespace):
            if time.monotonic() > deadline:
                log.warning("sandbox_processes_left", namespace=self.namespace, processes=len(left))
                return
            await asyncio.sleep(0.02)

    async def kill(self) -> None:
        for pid in self._members():  # a graceful stop first: the command gets SIGTERM
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), self.grace)
        except TimeoutError:
            pass
        self._signal(signal.SIGKILL)  # bwrap gone → its init gets SIGKILL → the whole namespace goes
        await self.proc.wait()
        await self._released()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._released()
