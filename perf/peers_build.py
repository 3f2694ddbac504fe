"""llama.cpp's tools, built once from a pinned source package, for `make bench-peers`.

The ``llama-cpp-python`` sdist vendors llama.cpp under ``vendor/llama.cpp``; it is fetched with
pip (``pip download --no-deps --no-binary :all:``), unpacked under ``.cache/llama.cpp/src`` and
built with cmake into ``.cache/llama.cpp/build``: ``llama-bench``, ``llama-quantize``, ``llama-imatrix`` and
``llama-perplexity``, plus its ``convert_hf_to_gguf.py``. Two traps on this machine kind:
``vendor/llama.cpp/.git`` points outside the tree (ninja then loops on "build.ninja still dirty"),
so it is removed; and the AMX code path dies with SIGILL in this sandbox, so the native build is
compiled with AMX off. About 5 minutes on 2 cores, once; later calls find the binaries.

    python -m perf.peers_build        # build (or find) and print the tool paths
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "llama.cpp"
LLAMA_CPP_PYTHON = "0.3.36"  # the pinned source package (llama.cpp vendored inside)
TARGETS = ("llama-bench", "llama-quantize", "llama-perplexity", "llama-imatrix")
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


@dataclass(frozen=True)
class LlamaTools:
    """Paths of the built tools and of the source tree they came from."""

    source: Path
    bench: Path
    quantize: Path
    perplexity: Path
    imatrix: Path

    @property
    def convert_script(self) -> Path:
        return self.source / "convert_hf_to_gguf.py"


def _source_dir(cache: Path) -> Path:
    return cache / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"


def _tools(cache: Path) -> LlamaTools:
    binaries = cache / "build" / "bin"
    return LlamaTools(
        source=_source_dir(cache),
        bench=binaries / "llama-bench",
        quantize=binaries / "llama-quantize",
        perplexity=binaries / "llama-perplexity",
        imatrix=binaries / "llama-imatrix",
    )


def _run(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed (exit {done.returncode}): see {log}")


def _fetch_source(cache: Path, log: Path) -> Path:
    source = _source_dir(cache)
    if (source / "CMakeLists.txt").is_file():
        return source
    downloads = cache / "src"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = downloads / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.is_file():
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
                "-d",
                str(downloads),
            ],
            log,
        )
    with tarfile.open(sdist) as archive:
        archive.extractall(downloads, filter="data")
    shutil.rmtree(source / ".git", ignore_errors=True)
    if (source / ".git").exists():
        (source / ".git").unlink()  # a gitlink file, not a directory
    return source


def _binaries(tools: LlamaTools) -> tuple[Path, ...]:
    return (tools.bench, tools.quantize, tools.perplexity, tools.imatrix)


def ensure_llama_tools(cache: Path = CACHE) -> LlamaTools:
    """The tools, built from the pinned sdist the first time (progress on stderr)."""
    tools = _tools(cache)
    if all(p.is_file() for p in _binaries(tools)):
        return tools
    from filelock import FileLock

    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".build.lock")):
        if all(p.is_file() for p in _binaries(tools)):
            return tools
        log = cache / "build.log"
        print(f"bench peers: building llama.cpp (once, ~5 min; log {log}) ...", file=sys.stderr)
        source = _fetch_source(cache, log)
        build = cache / "build"
        jobs = str(os.cpu_count() or 2)
        _run(
            [
                "cmake",
                "-S",
                str(source),
                "-B",
                str(build),
                "-G",
                "Ninja",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_SERVER=OFF",
                "-DGGML_NATIVE=ON",
                f"-DCMAKE_C_FLAGS={NO_AMX}",
                f"-DCMAKE_CXX_FLAGS={NO_AMX}",
            ],
            log,
        )
        _run(["cmake", "--build", str(build), "-j", jobs, "--target", *TARGETS], log)
    return tools


if __name__ == "__main__":
    found = ensure_llama_tools()
    for path in (*_binaries(found), found.convert_script):
        print(path)
