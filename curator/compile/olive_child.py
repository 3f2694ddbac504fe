"""``python -m curator.compile.olive_child run --config FILE``: Olive's workflow run with curator's
model-builder compatibility shim installed first (see :mod:`curator.compile.builder_compat`) and
curator's own passes registered (``CuratorModelBuilder``, :mod:`curator.compile.stream`).

The workflow runs through Olive's Python API (``olive.workflows.run``, what ``olive run`` calls),
and the process leaves without the interpreter's teardown once the output is written: Olive's
command line waits 2 s at its end for telemetry callbacks that a disabled logger never sends, and
the teardown of torch, transformers and the builder takes another 1.5 s. With Olive's input
fingerprint (below) and its command line's imports, the time around the builder pass of a 0.4B
compile on two cores went from 10.9 s to 4.9 s: time that no extra core shortens."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from curator.compile import builder_compat

# Olive pass name -> the class a recipe's pass "type" resolves to in this process
CURATOR_PASSES = {
    "CuratorModelBuilder": (
        "ModelBuilder",
        "curator.compile.stream.olive_pass.CuratorModelBuilder",
    ),
}
TEMP_DIR_NAME = "olive-tmp"  # beside the config, inside the compile's own work directory


def _add_passes(package: Any) -> Any:
    for name, (base, module_path) in CURATOR_PASSES.items():
        base_config = package.passes[base.lower()]
        package.passes[name.lower()] = base_config.model_copy(update={"module_path": module_path})
    return package


def register_passes() -> None:
    """Add curator's passes to Olive's pass registry (olive_config.json's ``passes`` map), each
    with the settings of the Olive pass it extends. ``olive run`` parses that file afresh
    (workflows.run), so its parser is wrapped too."""
    from olive.package_config import OlivePackageConfig

    if getattr(OlivePackageConfig, "_curator_passes", False):
        return
    _add_passes(OlivePackageConfig.load_default_config())
    parse = OlivePackageConfig.parse_file_or_obj

    def parse_with_curator_passes(cls: Any, file_or_obj: Any) -> Any:
        return _add_passes(parse(file_or_obj))

    OlivePackageConfig.parse_file_or_obj = classmethod(parse_with_curator_passes)
    OlivePackageConfig._curator_passes = True


def file_fingerprints(paths: list[Path]) -> list[str]:
    """``path:size:mtime`` of every file under ``paths`` (a path that is neither file nor
    directory, such as a Hub name, stands for itself)."""
    prints: list[str] = []
    for path in paths:
        if path.is_file():
            stat = path.stat()
            prints.append(f"{path.as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")
        elif path.is_dir():
            prints.extend(file_fingerprints(sorted(path.iterdir())))
        else:
            prints.append(path.as_posix())
    return prints


def fingerprint_input_by_metadata() -> None:
    """Olive keys its cache by a sha256 of every byte of the input model directory, read before
    its first pass (0.9 s per GB here: 6 s for a 3B bf16 checkpoint, 15 s at 7B). The compile's
    Olive cache lives in a work directory made for this one compile and removed after it, so each
    file's name, size and modification time identify the input as well."""
    from olive.model.config.model_config import ModelConfig

    keys = ("model_path", "adapter_path", "model_script", "script_dir")

    def fingerprints(self: Any, config: dict[str, Any]) -> list[str]:
        paths = [Path(config[key]) for key in keys if config.get(key)]
        extra = (config.get("model_attributes") or {}).get("additional_files") or []
        return file_fingerprints(paths + [Path(f) for f in extra])

    ModelConfig._get_model_files_hash = fingerprints


def run_workflow(config_path: Path) -> None:
    """Olive's workflow for ``config_path``, its temporary files inside the work directory."""
    from olive.workflows import run as olive_run

    olive_run(str(config_path), tempdir=str(config_path.parent / TEMP_DIR_NAME))


def exit_without_teardown(code: int) -> None:
    """Flush what a normal exit would (log handlers, stdio, curator's quantizer processes), then
    end the process at once."""
    from curator.quant.kernels import shutdown_workers  # start-up: numpy

    shutdown_workers()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m curator.compile.olive_child")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an Olive workflow config")
    run.add_argument("--config", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    builder_compat.install()
    register_passes()
    fingerprint_input_by_metadata()
    run_workflow(args.config)
    exit_without_teardown(0)


if __name__ == "__main__":
    main()
