"""Where the project's data (schemas/, recipes/) lives: beside the package in a checkout or an
editable install, under curator/_data in a wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"curator data directory {name!r} is missing from the installation")


def schema_path(name: str) -> Path:
    return data_dir("schemas") / f"{name}.schema.json"


def project_root() -> Path | None:
    """The checkout this package runs from, if any (holds registry/ and recipes/)."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() else None
