"""``python -m curator.compile.olive_child run --config FILE``: Olive's command line with curator's
model-builder compatibility shim installed first (see :mod:`curator.compile.builder_compat`) and
curator's own passes registered (``CuratorModelBuilder``, :mod:`curator.compile.stream`)."""

from __future__ import annotations

from typing import Any

from curator.compile import builder_compat

# Olive pass name -> the class a recipe's pass "type" resolves to in this process
CURATOR_PASSES = {
    "CuratorModelBuilder": (
        "ModelBuilder",
        "curator.compile.stream.olive_pass.CuratorModelBuilder",
    ),
}


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


def main() -> None:
    builder_compat.install()
    register_passes()
    from olive.cli.launcher import main as olive_main

    olive_main(called_as_console_script=False)


if __name__ == "__main__":
    main()
