"""curator's one platform module: every OS-specific call, each with a path for Linux, macOS and
Windows (Foundry Local's users are mostly on Windows).

Nothing else in curator may call a POSIX-only API (``resource``, ``fcntl``, ``os.killpg``,
``os.setsid``, ``start_new_session``, ``os.wait4``, ``prctl``, signals other than SIGINT/SIGTERM):
``tests/test_portable.py`` refuses them outside this file and imports every module the way Windows
sees it (those modules hidden).

- peak memory of this process: ``resource`` where it exists (kB on Linux, bytes on macOS), psutil's
  peak working set on Windows;
- a child in its own process group (a new session on POSIX, ``CREATE_NEW_PROCESS_GROUP`` on
  Windows), dying with its parent on Linux (``prctl``, guarded), waited for with its peak RSS, and
  stopped as a whole tree (psutil: terminate, then kill what is left);
- paths Windows cannot open without long-path support (``MAX_PATH``, 260 characters);
- Foundry Local's model cache per platform.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # start-up: curator.paths imports this module for every command
    import subprocess

IS_WINDOWS = sys.platform == "win32"
IS_MACOS = sys.platform == "darwin"
IS_LINUX = sys.platform.startswith("linux")

# What a model directory holds below its own path: a separator and the longest file name written
# there (tokenizer_config.json, inference_model.json, curator's manifest), with room to spare.
MODEL_DIR_RESERVE = 40

# Windows' MAX_PATH: a full path of 260 characters or more (with its terminating NUL) cannot be
# opened unless long paths are enabled (LongPathsEnabled=1 and a manifest that opts in; Python 3.6+
# opts in). Deep Foundry cache paths (<cache>/<publisher>/<name>-<variant>-<version>/v<n>/...)
# get there quickly under a long user name.
WINDOWS_MAX_PATH = 260
LONG_PATHS_HINT = (
    "enable long paths (HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem LongPathsEnabled=1, "
    "or `New-ItemProperty ... -Name LongPathsEnabled -Value 1` as administrator) or pass a shorter "
    "--cache-dir (e.g. C:\\foundry)"
)


def platform_name() -> str:
    """``windows``, ``macos``, ``linux`` or Python's name for another platform."""
    if IS_WINDOWS:
        return "windows"
    if IS_MACOS:
        return "macos"
    return "linux" if IS_LINUX else sys.platform


def default_foundry_cache() -> Path:
    """Where Foundry Local keeps models when nothing says otherwise.

    The Foundry CLI uses ``.foundry/cache/models`` under the user's home on every platform:
    ``%USERPROFILE%\\.foundry\\cache\\models`` on Windows, ``~/.foundry/cache/models`` on macOS and
    Linux (``Path.home()`` reads USERPROFILE on Windows and HOME elsewhere).
    """
    return Path.home() / ".foundry" / "cache" / "models"


# ------------------------------------------------------------------------------------------- cpus


def usable_cpu_count() -> int:
    """The cores this process may run on: its affinity where the OS has one (Linux), else all."""
    affinity: Callable[[int], set[int]] | None = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        with contextlib.suppress(OSError):
            return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------- memory


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (0 when the platform gives none).

    Linux: VmHWM, not getrusage's ru_maxrss, which also counts the parent's memory map this
    process held between its fork and its exec (a worker started by a 600 MiB process reports at
    least 600 MiB there)."""
    if IS_LINUX:
        high_water = process_peak_rss_bytes(os.getpid())
        if high_water is not None:
            return high_water
    if IS_WINDOWS:
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", 0) or getattr(info, "rss", 0))
    try:
        import resource
    except ImportError:  # a POSIX without it: the current RSS is the best lower bound
        import psutil

        return int(psutil.Process().memory_info().rss)
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if IS_MACOS else peak * 1024  # macOS reports bytes, Linux kilobytes


def process_peak_rss_bytes(pid: int) -> int | None:
    """Another process's own peak RSS so far (Windows: peak working set; Linux: VmHWM), or None
    where the platform does not keep one (macOS) or the process is gone."""
    if IS_WINDOWS:
        import psutil

        try:
            return int(getattr(psutil.Process(pid).memory_info(), "peak_wset", 0)) or None
        except psutil.Error:
            return None
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024  # kB
    return None


def tree_rss_bytes(pid: int) -> int:
    """The current RSS of a process and all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += int(proc.memory_info().rss)
    return total


# -------------------------------------------------------------------------------- child processes


def own_group_kwargs() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that start the child in its own process group, so a
    Ctrl-C in curator's terminal reaches curator (which stops the child's tree) and not the child."""
    import subprocess

    if IS_WINDOWS:
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    kwargs: dict[str, Any] = {"start_new_session": True}
    if IS_LINUX:
        kwargs["preexec_fn"] = _die_with_parent_hook()
    return kwargs


def _die_with_parent_hook() -> Callable[[], None]:
    """Linux: a hook run in the child before exec that makes it get SIGKILL if curator dies, so
    no orphan keeps writing. ctypes and libc are loaded here, before the fork, not in the child."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None

    def hook() -> None:  # pragma: no cover - runs in the child before exec
        with contextlib.suppress(Exception):
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return hook


@dataclass(frozen=True)
class ChildExit:
    returncode: int
    # as the OS accounted it at exit; 0 where it gives none (Windows) or where it cannot be told
    # from this process's own size (not above this process's peak: see poll_child)
    peak_rss_bytes: int


def poll_child(proc: subprocess.Popen[Any]) -> ChildExit | None:
    """The child's exit code and peak RSS if it has exited, else None (never blocks).

    POSIX: ``os.wait4`` reaps it and gives the kernel's peak (ru_maxrss) of the child's largest
    process; Windows has no rusage for children: the caller's sampled tree RSS is the figure."""
    wait4: Callable[[int, int], tuple[int, int, Any]] | None = getattr(os, "wait4", None)
    if proc.returncode is not None:  # reaped by an earlier call
        return ChildExit(proc.returncode, 0)
    if wait4 is None:
        code = proc.poll()
        return None if code is None else ChildExit(code, 0)
    pid, status, usage = wait4(proc.pid, getattr(os, "WNOHANG", 1))
    if pid != proc.pid:
        return None
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    maxrss = int(usage.ru_maxrss) * (1 if IS_MACOS else 1024)
    # Linux counts the copy of this process's memory map that the child held until its exec as
    # the child's own: ru_maxrss is at least this process's resident size at the fork (a child
    # of an 800 MiB test process reported 836 MiB for a 490 MiB compile). A figure no higher
    # than this process's own peak (its VmHWM, which that copy does not touch) may be only
    # that, so it is not given.
    return ChildExit(code, maxrss if maxrss > peak_rss_bytes() else 0)


def stop_tree(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop a child and every process under it: terminate all (SIGTERM on POSIX, TerminateProcess
    on Windows), wait ``grace`` seconds, then kill what is left. The tree is listed before the
    first signal, so grandchildren re-parented when their parent dies are still reached."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = []
    for step in ("terminate", "kill"):
        alive = [p for p in procs if _is_running(p)]
        if not alive:
            break
        for p in alive:
            with contextlib.suppress(psutil.Error):
                getattr(p, step)()
        _gone, procs = psutil.wait_procs(alive, timeout=grace)
    import subprocess  # start-up: see the imports above

    with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
        proc.wait(timeout=grace)


def _is_running(proc: Any) -> bool:
    try:
        return bool(proc.is_running())
    except Exception:
        return False


# ------------------------------------------------------------------------------------------- paths

# Windows refuses to replace a file another process holds open (a reader of the registry, an
# antivirus scan) with PermissionError for a moment; POSIX replaces it at once.
REPLACE_RETRIES = 20
REPLACE_RETRY_SECONDS = 0.05


def replace_file(source: Path, target: Path, *, windows: bool | None = None) -> None:
    """``os.replace`` that, on Windows, retries for about a second while ``target`` is held open."""
    if not (IS_WINDOWS if windows is None else windows):
        os.replace(source, target)
        return
    for attempt in range(REPLACE_RETRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == REPLACE_RETRIES - 1:
                raise
            time.sleep(REPLACE_RETRY_SECONDS)


@dataclass(frozen=True)
class LongPath:
    """A path too long for Windows without long-path support."""

    path: Path
    length: int
    limit: int = WINDOWS_MAX_PATH

    def message(self) -> str:
        return (
            f"{self.path} leads to paths of {self.length} characters; Windows opens at most "
            f"{self.limit - 1} without long paths"
        )


def long_path_problem(
    path: Path, *, reserve: int = 0, windows: bool | None = None
) -> LongPath | None:
    """The problem if ``path`` (made absolute), plus ``reserve`` characters for what will be written
    inside it, would reach MAX_PATH on Windows without long paths; else None.

    ``windows`` defaults to this platform; a test passes True to check a path as Windows would."""
    if not (IS_WINDOWS if windows is None else windows):
        return None
    if IS_WINDOWS and long_paths_enabled():
        return None
    text = str(path if path.is_absolute() else path.absolute())
    if text.startswith("\\\\?\\"):  # the extended-length prefix lifts the limit
        return None
    length = len(text) + reserve
    if length >= WINDOWS_MAX_PATH:
        return LongPath(path, length)
    return None


def long_paths_enabled() -> bool:
    """Windows: LongPathsEnabled is set in the registry (False where it cannot be read)."""
    if not IS_WINDOWS:
        return True
    try:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        key = winreg.OpenKey(  # type: ignore[attr-defined,unused-ignore]
            winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined,unused-ignore]
            r"SYSTEM\CurrentControlSet\Control\FileSystem",
        )
        value, _kind = winreg.QueryValueEx(key, "LongPathsEnabled")  # type: ignore[attr-defined,unused-ignore]
        return bool(value)
    except (ImportError, OSError):
        return False
