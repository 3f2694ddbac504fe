"""The machine a benchmark ran on: CPU model, cores, RAM, OS, Python and package versions.

``fingerprint`` is the first 16 hex digits of the sha256 of CPU model, logical cores, RAM (GiB,
rounded to one decimal), OS and architecture: two reports with the same fingerprint ran on the same
kind of machine, so their figures may be compared.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "curator",
    "foundry-local-sdk",
    "onnxruntime",
    "onnxruntime-genai-core",
    "onnxruntime-genai",
    "tokenizers",
    "httpx",
)


@dataclass(frozen=True)
class Machine:
    fingerprint: str
    cpu: str
    cores: int
    ram_gb: float
    os: str
    arch: str
    python: str
    packages: tuple[tuple[str, str], ...]

    def registry_record(self) -> dict[str, Any]:
        """The ``machine`` object of a registry benchmark summary (schemas/models.schema.json)."""
        return {
            "fingerprint": self.fingerprint,
            "cpu": self.cpu,
            "cores": self.cores,
            "ramGb": self.ram_gb,
            "os": self.os,
        }


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else platform.processor())."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return " ".join(line.split(":", 1)[1].split())
    return platform.processor() or platform.machine() or "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> tuple[tuple[str, str], ...]:
    """Installed versions (from package metadata, without importing anything)."""
    found = []
    for name in names:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def describe_machine() -> Machine:
    import psutil

    cpu = cpu_model()
    cores = os.cpu_count() or 1
    ram_gb = round(psutil.virtual_memory().total / 1024**3, 1)
    system = f"{platform.system()} {platform.release()}".strip()
    arch = platform.machine()
    key = "|".join((cpu, str(cores), f"{ram_gb:.1f}", system, arch))
    return Machine(
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        cpu=cpu[:200],
        cores=cores,
        ram_gb=ram_gb,
        os=system[:200],
        arch=arch,
        python=platform.python_version(),
        packages=package_versions(),
    )


def thread_note(model_id: str, model_dir: Path | None, cores: int) -> str:
    """The thread setting a compiled model ran with, for the bench report's notes: the
    ``intra_op_num_threads`` of its genai_config.json (0 = all cores, onnxruntime's default)."""
    from curator.compile.runtime_options import session_threads  # start-up: loads curator.compile

    if model_dir is None:
        return f"{model_id}: thread setting unknown (no compiled directory found)"
    threads = session_threads(model_dir)
    if threads is None:
        return (
            f"{model_id}: genai_config.json sets no intra_op_num_threads "
            "(onnxruntime-genai's own choice; about half speed on 2 cores)"
        )
    used = f"all {cores} cores" if threads == 0 else f"{threads} of {cores} cores"
    return f"{model_id}: intra_op_num_threads {threads} ({used}) from its genai_config.json"
