"""``python -m curator.compile.olive_child run --config FILE``: Olive's command line with curator's
model-builder compatibility shim installed first (see :mod:`curator.compile.builder_compat`)."""

from __future__ import annotations


def main() -> None:
    from curator.compile import builder_compat

    builder_compat.install()
    from olive.cli.launcher import main as olive_main

    olive_main(called_as_console_script=False)


if __name__ == "__main__":
    main()
