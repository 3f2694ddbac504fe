"""Guards: curator.portable, curator.paths, curator.cli.paths

Windows and macOS (issue 24): every curator module imports with the POSIX-only modules hidden the
way Windows sees them, no POSIX-only call appears outside curator/portable.py, and the platform
module's portable paths work (process trees, peak memory, MAX_PATH, replace retries, cache paths).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curator import portable
from curator.compile import preflight
from curator.errors import PreflightError
from curator.paths import foundry_cache_dir, resolve_paths

REPO_ROOT = Path(__file__).resolve().parent.parent
CURATOR = REPO_ROOT / "curator"
PLATFORM_MODULE = CURATOR / "portable.py"

# Modules Windows does not have (the stdlib's POSIX-only modules).
POSIX_ONLY_MODULES = frozenset(
    {
        "resource",
        "fcntl",
        "termios",
        "tty",
        "pty",
        "pwd",
        "grp",
        "posix",
        "syslog",
        "_posixsubprocess",
    }
)
# Functions and constants of os and signal that Windows lacks (or, for prctl, Linux alone has).
POSIX_ONLY_OS = frozenset(
    {
        "killpg", "setsid", "getpgid", "getpgrp", "setpgid", "setpgrp", "getsid", "fork",
        "forkpty", "wait3", "wait4", "WNOHANG", "getuid", "geteuid", "getgid", "getegid",
        "setuid", "setgid", "sysconf", "uname", "getloadavg", "nice", "chown", "lchown", "fchown",
        "statvfs", "fstatvfs", "mkfifo", "mknod", "sched_getaffinity", "posix_spawn", "sync",
    }
)  # fmt: skip
PORTABLE_SIGNALS = frozenset({"SIGINT", "SIGTERM", "SIG_DFL", "SIG_IGN", "CTRL_C_EVENT"})
POSIX_ONLY_SIGNAL_CALLS = frozenset({"alarm", "setitimer", "getitimer", "pause", "siginterrupt"})
POSIX_ONLY_KEYWORDS = frozenset({"start_new_session", "preexec_fn", "process_group"})


def posix_only_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every POSIX-only import, attribute or Popen keyword in ``source``, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        what: str | None = None
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
            hit = [name for name in names if name in POSIX_ONLY_MODULES]
            what = f"import {hit[0]}" if hit else None
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in POSIX_ONLY_MODULES and node.level == 0:
                what = f"from {root} import"
            elif root == "os" and any(a.name in POSIX_ONLY_OS for a in node.names):
                what = "from os import " + ",".join(a.name for a in node.names)
            elif root == "signal" and any(
                a.name.startswith("SIG") and a.name not in PORTABLE_SIGNALS for a in node.names
            ):
                what = "from signal import " + ",".join(a.name for a in node.names)
        elif isinstance(node, ast.Attribute) and node.attr == "prctl":
            what = "prctl"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner == "os" and attr in POSIX_ONLY_OS:
                what = f"os.{attr}"
            elif owner == "signal" and (
                (attr.startswith("SIG") and attr not in PORTABLE_SIGNALS)
                or attr in POSIX_ONLY_SIGNAL_CALLS
            ):
                what = f"signal.{attr}"
        elif isinstance(node, ast.keyword) and node.arg in POSIX_ONLY_KEYWORDS:
            what = f"{node.arg}="
        if what:
            found.append(f"{getattr(node, 'lineno', 0)}: {what}")
    return found


def test_no_posix_only_call_outside_the_platform_module() -> None:
    offenders = {}
    for path in sorted(CURATOR.rglob("*.py")):
        if path == PLATFORM_MODULE:
            continue
        uses = posix_only_uses(path.read_text(encoding="utf-8"), str(path))
        if uses:
            offenders[str(path.relative_to(REPO_ROOT))] = uses
    assert offenders == {}, f"POSIX-only calls belong in curator/portable.py: {offenders}"


@pytest.mark.parametrize(
    "snippet",
    [
        "import resource",
        "import os, fcntl",
        "from resource import getrusage",
        "import os\nos.killpg(1, 15)",
        "from os import setsid",
        "import os\nos.wait4(1, 0)",
        "import signal\nsignal.SIGKILL",
        "from signal import SIGHUP",
        "import signal\nsignal.alarm(1)",
        "import subprocess\nsubprocess.Popen(['x'], start_new_session=True)",
        "import subprocess\nsubprocess.Popen(['x'], preexec_fn=None)",
        "libc.prctl(1, 9)",
    ],
)
def test_the_lint_rule_refuses_each_posix_only_call(snippet: str) -> None:
    assert posix_only_uses(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        "import os\nos.replace('a', 'b')",
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_DFL)",
        "from signal import SIGINT",
        "import subprocess\nsubprocess.Popen(['x'], cwd='.')",
        "import os\nos.getpid()",
    ],
)
def test_the_lint_rule_lets_portable_calls_through(snippet: str) -> None:
    assert posix_only_uses(snippet) == []


# A child Python that imports every curator module as Windows would: the POSIX-only stdlib modules
# are hidden (an import of them raises ImportError), os and signal lose what Windows lacks, and
# sys.platform says win32. Third-party packages curator imports at module level are loaded first,
# as they are (their Windows builds do not need these modules).
_AS_WINDOWS = textwrap.dedent(
    """
    import importlib, json, os, pkgutil, signal, sys, traceback
    for name in json.loads(sys.argv[1]):
        try:
            importlib.import_module(name)
        except BaseException:
            pass
    for name in json.loads(sys.argv[2]):
        sys.modules[name] = None
    for name in json.loads(sys.argv[3]):
        if hasattr(os, name):
            delattr(os, name)
    for name in [n for n in dir(signal) if n.startswith("SIG") and n not in json.loads(sys.argv[4])]:
        delattr(signal, name)
    sys.platform = "win32"
    package_name, extra_path = sys.argv[5], sys.argv[6]
    if extra_path:
        sys.path.insert(0, extra_path)
    failures = {}
    try:
        package = importlib.import_module(package_name)
    except BaseException as exc:
        print(json.dumps({"imported": 0, "failures": {package_name: repr(exc)}}))
        raise SystemExit(0)
    skipped = set(json.loads(sys.argv[7]))
    names = [m.name for m in pkgutil.walk_packages(package.__path__, package_name + ".")
             if not m.name.endswith("__main__") and m.name not in skipped]
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            failures[name] = traceback.format_exception_only(type(exc), exc)[-1].strip()
    print(json.dumps({"imported": len(names), "failures": failures}))
    """
)

# Lists the modules other than curator's that importing every curator module loads (the standard
# library's and third parties'): they are loaded first in the simulation, because on Windows they
# take their own Windows code paths, which Linux cannot run.
_LOADED_ELSEWHERE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import curator
    skipped = set(json.loads(sys.argv[1]))
    for m in pkgutil.walk_packages(curator.__path__, "curator."):
        if m.name.endswith("__main__") or m.name in skipped:
            continue
        try:
            importlib.import_module(m.name)
        except ImportError:
            pass
    print(json.dumps(sorted(n for n in sys.modules if n.split(".")[0] != "curator")))
    """
)


def _python(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def olive_child_modules() -> list[str]:
    """Modules that import Olive at module level: Olive loads them by module path inside the
    compile's child process, the only place they run. The lint rule above still reads them; the
    import test leaves them out (importing Olive and torch takes half a minute)."""
    found = []
    for path in sorted(CURATOR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "olive" for name in names):
                module = path.relative_to(REPO_ROOT).with_suffix("").parts
                found.append(".".join(module))
                break
    return found


def _import_as_windows(package: str, preload: list[str], extra_path: str = "") -> dict[str, object]:
    result: dict[str, object] = json.loads(
        _python(
            _AS_WINDOWS,
            json.dumps(preload),
            json.dumps(sorted(POSIX_ONLY_MODULES)),
            json.dumps(sorted(POSIX_ONLY_OS)),
            json.dumps(sorted(PORTABLE_SIGNALS)),
            package,
            extra_path,
            json.dumps(olive_child_modules() if package == "curator" else []),
        )
    )
    return result


@pytest.mark.skipif(sys.platform == "win32", reason="simulates Windows; on Windows CI it is real")
def test_every_module_imports_with_posix_only_modules_hidden() -> None:
    others = json.loads(_python(_LOADED_ELSEWHERE, json.dumps(olive_child_modules())))
    result = _import_as_windows("curator", [n for n in others if n not in POSIX_ONLY_MODULES])
    assert isinstance(result["imported"], int) and result["imported"] > 100
    assert result["failures"] == {}


@pytest.mark.parametrize(
    "body",
    [
        "import resource",
        "import fcntl",
        "from pwd import getpwnam",
        "import os\nos.killpg",
        "import signal\nsignal.SIGKILL",
    ],
)
def test_the_windows_simulation_catches_a_module_level_posix_use(tmp_path: Path, body: str) -> None:
    package = tmp_path / "posixy"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "leaf.py").write_text(body + "\n", encoding="utf-8")
    (package / "fine.py").write_text("import os\nos.getpid()\n", encoding="utf-8")
    result = _import_as_windows("posixy", [], str(tmp_path))
    assert result["imported"] == 2
    assert list(result["failures"]) == ["posixy.leaf"]  # type: ignore[call-overload]


# ------------------------------------------------------------------------------- process trees

_PARENT_WITH_GRANDCHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def test_stop_tree_stops_the_child_and_its_grandchildren() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARENT_WITH_GRANDCHILD],
        stdout=subprocess.PIPE,
        text=True,
        **portable.own_group_kwargs(),
    )
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    import psutil

    assert psutil.pid_exists(grandchild)
    started = time.monotonic()
    portable.stop_tree(proc, grace=5.0)
    assert proc.returncode is not None
    gone = not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == "zombie"
    assert gone
    assert time.monotonic() - started < 5.0  # terminated at once, not after the grace period


def test_stop_tree_kills_what_ignores_terminate() -> None:
    stubborn = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", stubborn],
        stdout=subprocess.PIPE,
        text=True,
        **portable.own_group_kwargs(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    portable.stop_tree(proc, grace=0.5)
    assert proc.returncode is not None
    assert 0.4 < time.monotonic() - started < 5.0


# Run in a fresh interpreter (the test process may be large: see poll_child): allocates
# PARENT_MIB, then starts a child that allocates CHILD_MIB and exits 3, and prints what
# poll_child reported as JSON.
_POLL_FROM_A_PARENT = """
import json, subprocess, sys, time
from curator import portable
parent_mib, child_mib = int(sys.argv[1]), int(sys.argv[2])
held = bytearray(parent_mib * 2**20)
held[::4096] = b"x" * len(held[::4096])
proc = subprocess.Popen(
    [sys.executable, "-c", f"b = bytearray({child_mib} * 2**20); b[::4096] = b'x' * len(b[::4096]); import sys; sys.exit(3)"],
    **portable.own_group_kwargs(),
)
deadline = time.monotonic() + 60
exited = None
while exited is None and time.monotonic() < deadline:
    exited = portable.poll_child(proc)
    time.sleep(0.02)
again = portable.poll_child(proc)
print(json.dumps({
    "code": exited.returncode, "peak": exited.peak_rss_bytes,
    "again": again.returncode, "own_peak": portable.peak_rss_bytes(),
}))
"""


def _poll_from_a_parent(parent_mib: int, child_mib: int) -> dict[str, int]:
    result: dict[str, int] = json.loads(
        _python(_POLL_FROM_A_PARENT, str(parent_mib), str(child_mib))
    )
    return result


def test_poll_child_gives_exit_code_and_peak_memory() -> None:
    seen = _poll_from_a_parent(0, 160)
    assert seen["code"] == 3
    assert seen["again"] == 3  # an exited child stays exited (no second reap)
    if hasattr(os, "wait4"):
        assert seen["peak"] >= 160 * 2**20


def test_poll_child_does_not_report_its_parents_size_as_the_childs() -> None:
    # The child holds about 10 MiB; its parent 400 MiB when it forks. Linux's ru_maxrss for the
    # child counts the parent's memory map it held until exec: that figure is not given.
    seen = _poll_from_a_parent(400, 0)
    assert seen["code"] == 3
    assert seen["own_peak"] >= 400 * 2**20
    assert seen["peak"] < 400 * 2**20


_PEAK_OF_A_CHILD = """
import subprocess, sys
held = bytearray(400 * 2**20)
held[::4096] = b"x" * len(held[::4096])
done = subprocess.run(
    [sys.executable, "-c", "from curator import portable; print(portable.peak_rss_bytes())"],
    capture_output=True, text=True, check=True,
)
print(done.stdout.strip())
"""


@pytest.mark.skipif(not portable.IS_LINUX, reason="the fork-to-exec accounting is Linux's")
def test_peak_rss_bytes_of_a_child_does_not_count_its_parents_memory() -> None:
    # getrusage's ru_maxrss of a process started by one holding 400 MiB is at least 400 MiB
    peak = int(_python(_PEAK_OF_A_CHILD))
    assert 0 < peak < 200 * 2**20


def test_peak_rss_bytes_counts_a_past_allocation() -> None:
    before = portable.peak_rss_bytes()
    block = bytearray(64 * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    del block
    after = portable.peak_rss_bytes()
    assert after >= before
    assert after >= 64 * 2**20
    assert after < 64 * 2**30


# ----------------------------------------------------------------------------------------- paths


def test_long_path_problem_as_windows_sees_it(tmp_path: Path) -> None:
    short = tmp_path / "cache"
    assert portable.long_path_problem(short, windows=True) is None
    deep = tmp_path / ("d" * (portable.WINDOWS_MAX_PATH - len(str(tmp_path)) - 1))
    problem = portable.long_path_problem(deep, windows=True)
    assert problem is not None and problem.length == len(str(deep)) == 260
    assert "260 characters" in problem.message() and "at most 259" in problem.message()
    one_shorter = tmp_path / ("d" * (portable.WINDOWS_MAX_PATH - len(str(tmp_path)) - 2))
    assert portable.long_path_problem(one_shorter, windows=True) is None
    assert portable.long_path_problem(one_shorter, reserve=1, windows=True) is not None
    assert portable.long_path_problem(deep, windows=False) is None


def test_compile_preflight_refuses_a_model_path_windows_cannot_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "publisher" / ("m" * 230)
    preflight.check_target(target, force=False)  # Linux: fine
    monkeypatch.setattr(portable, "IS_WINDOWS", True)  # long_paths_enabled() reads no registry here
    with pytest.raises(PreflightError) as refused:
        preflight.check_target(target, force=False)
    assert "Windows opens at most 259" in str(refused.value)
    assert refused.value.hint is not None and "LongPathsEnabled" in refused.value.hint
    assert "--cache-dir" in refused.value.hint
    preflight.check_target(tmp_path / "publisher" / "short-model-cpu-1", force=False)


def test_paths_warn_about_a_cache_too_deep_for_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("c" * 150)
    assert resolve_paths(cache_dir=deep).warnings == ()
    monkeypatch.setattr(portable, "IS_WINDOWS", True)
    paths = resolve_paths(cache_dir=deep)
    assert paths.platform == "windows"
    assert len(paths.warnings) == 1 and "LongPathsEnabled" in paths.warnings[0]
    assert resolve_paths(cache_dir=tmp_path / "c").warnings == ()


def test_the_default_foundry_cache_is_under_the_users_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOUNDRY_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    assert foundry_cache_dir() == tmp_path / ".foundry" / "cache" / "models"
    assert foundry_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("FOUNDRY_CACHE_DIR", str(tmp_path / "env"))
    assert foundry_cache_dir() == tmp_path / "env"


def test_replace_file_retries_while_windows_holds_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "new", tmp_path / "old"
    source.write_text("new", encoding="utf-8")
    target.write_text("old", encoding="utf-8")
    real_replace = os.replace
    refusals = [PermissionError(13, "held open")] * 3

    def held_open(src: Path, dst: Path) -> None:
        if refusals:
            raise refusals.pop()
        real_replace(src, dst)

    monkeypatch.setattr(portable.os, "replace", held_open)
    monkeypatch.setattr(portable, "REPLACE_RETRY_SECONDS", 0.0)
    with pytest.raises(PermissionError):  # POSIX: no retry, the first refusal stands
        portable.replace_file(source, target, windows=False)
    portable.replace_file(source, target, windows=True)
    assert target.read_text(encoding="utf-8") == "new" and not source.exists()
    refusals.extend([PermissionError(13, "held open")] * portable.REPLACE_RETRIES)
    source.write_text("newer", encoding="utf-8")
    with pytest.raises(PermissionError):
        portable.replace_file(source, target, windows=True)
    assert target.read_text(encoding="utf-8") == "new"


# ------------------------------------------------------------------------------------------ CI

TESTS_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "tests.yml"


def test_the_tests_workflow_is_valid_and_runs_the_portable_tests_on_windows_and_macos() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(TESTS_WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = TESTS_WORKFLOW.read_text(encoding="utf-8")
    assert "os: [windows-latest, macos-latest]" in text
    assert '-m "not linux_only"' in text
    assert "runs-on: ubuntu-latest" in text and "make test" in text and "make lint" in text


def test_every_linux_only_entry_names_a_real_test_and_a_reason() -> None:
    from tests import conftest

    for entry, reason in conftest.LINUX_ONLY_TESTS.items():
        file_name, _, test_name = entry.partition("::")
        path = REPO_ROOT / "tests" / file_name
        assert path.is_file(), entry
        assert not test_name or f"def {test_name}(" in path.read_text(encoding="utf-8"), entry
        assert "Linux only" in reason or "POSIX" in reason, entry
    fixtures = (REPO_ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    for name in conftest.LINUX_ONLY_FIXTURES:
        assert f"def {name}(" in fixtures, name


def test_another_processs_peak_rss_is_at_least_its_current_rss() -> None:
    import psutil

    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"]
    )
    try:
        deadline = time.monotonic() + 20
        while (
            psutil.Process(child.pid).memory_info().rss < 64 << 20 and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        peak = portable.process_peak_rss_bytes(child.pid)
        if sys.platform == "darwin":
            assert peak is None  # macOS keeps no per-process high-water mark another can read
        else:
            assert peak is not None and peak >= psutil.Process(child.pid).memory_info().rss
            assert peak >= 64 << 20
    finally:
        child.kill()
        child.wait()
    assert portable.process_peak_rss_bytes(child.pid) is None  # gone
