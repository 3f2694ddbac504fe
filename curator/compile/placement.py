"""Build in a hidden work directory under the cache root, then rename into place.

Foundry Local looks for models at ``<cache>/<publisher>/<model>``; the work directories live under
``<cache>/.curator-work/`` (a dot-directory, and one level too deep), so a half-written model is
never seen. Each work directory records its owner (pid + process start time); a later compile
removes the ones whose owner is gone (a killed run) before it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORK_ROOT_NAME = ".curator-work"
OWNER_FILE = "owner.json"
FRESH_SECONDS = 60.0


def target_dir(cache_root: Path, publisher: str, model_id: str) -> Path:
    """``<cache>/<publisher>/<id with ':' as '-'>``."""
    return cache_root / publisher / model_id.replace(":", "-")


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _owner_alive(owner_file: Path) -> bool:
    try:
        owner = json.loads(owner_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    for key in ("pid", "child_pid"):
        pid = owner.get(key)
        started = owner.get(f"{key}_started")
        if isinstance(pid, int) and started is not None:
            now = _process_start(pid)
            if now is not None and abs(now - float(started)) < 1.0:
                return True
    return False


def _just_made(work: Path) -> bool:
    """A work directory another compile created a moment ago may not have its owner file yet."""
    if (work / OWNER_FILE).exists():
        return False
    try:
        return time.time() - work.stat().st_mtime < FRESH_SECONDS
    except OSError:
        return False


def remove_stale(cache_root: Path) -> list[Path]:
    """Delete work directories left by compiles that are no longer running."""
    root = cache_root / WORK_ROOT_NAME
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not _owner_alive(entry / OWNER_FILE) and not _just_made(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def record_owner(work: Path, child_pid: int | None = None) -> None:
    """Write who owns ``work`` (this process, and the Olive child once it runs)."""
    owner: dict[str, object] = {"pid": os.getpid(), "pid_started": _process_start(os.getpid())}
    if child_pid is not None:
        owner["child_pid"] = child_pid
        owner["child_pid_started"] = _process_start(child_pid)
    tmp = work / f".{OWNER_FILE}.tmp"
    tmp.write_text(json.dumps(owner), encoding="utf-8")
    os.replace(tmp, work / OWNER_FILE)


@contextmanager
def work_directory(cache_root: Path, label: str, keep: bool = False) -> Iterator[Path]:
    """A fresh owned work directory, removed on exit (also on error and Ctrl-C)."""
    root = cache_root / WORK_ROOT_NAME
    work = _make_work_dir(root, label)
    try:
        record_owner(work)
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):
                root.rmdir()  # only when empty


def _make_work_dir(root: Path, label: str) -> Path:
    for _ in range(5):  # another compile may remove an empty root between mkdir and mkdtemp
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))
    return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))


def place(built: Path, target: Path, work: Path, replace: bool) -> None:
    """Rename ``built`` to ``target``; with ``replace``, an existing target moves aside first and
    comes back if the new one cannot be put in its place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    aside: Path | None = None
    if target.exists():
        if not replace:
            raise FileExistsError(target)
        aside = work / "replaced"
        os.replace(target, aside)
    try:
        os.replace(built, target)
    except BaseException:
        if aside is not None and not target.exists():
            os.replace(aside, target)
        raise
