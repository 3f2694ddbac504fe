"""JSON files: strict reading with line/column errors, stable formatting and atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from curator.errors import InputFileError


def read_json(path: Path, what: str = "file") -> Any:
    """Parse ``path``; a missing file or malformed JSON raises InputFileError naming line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{what} not found: {path}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc}", hint="check the file") from None
    return parse_json(text, str(path), what)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, origin: str, what: str = "file") -> Any:
    """Strict JSON: NaN and Infinity, which Python's json would accept, are errors too."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{origin}:{exc.lineno}:{exc.colno}: invalid JSON in {what}: {exc.msg}",
            hint=f"fix the JSON at line {exc.lineno}, column {exc.colno}",
        ) from None
    except ValueError as exc:
        raise InputFileError(
            f"{origin}: invalid JSON in {what}: {exc}", hint="use a finite number or null"
        ) from None


def dumps_stable(data: Any, sort_keys: bool = False) -> str:
    """The house format: 2-space indent, UTF-8 kept as is, trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory, fsync, then os.replace: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomic(path: Path, data: Any, sort_keys: bool = False) -> None:
    write_text_atomic(path, dumps_stable(data, sort_keys))
