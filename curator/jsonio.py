"""JSON files: strict reading with line/column errors, stable formatting and atomic writes.

Reading is strict because the files come from pull requests and other machines: NaN/Infinity,
duplicate keys (which Python's json would resolve silently, last one wins), nesting deeper than
MAX_DEPTH and files larger than MAX_BYTES are errors, never tracebacks or silent data loss.
"""

from __future__ import annotations

import contextlib
import gc
import json
import json.decoder
import json.scanner
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curator.errors import InputFileError
from curator.portable import replace_file

MAX_DEPTH = 64  # the registry nests 6 deep; recursive readers stay far from Python's limit
MAX_BYTES = 64 * 2**20  # about 30,000 registry entries with a benchmark run each


def read_json(path: Path, what: str = "file", max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``path``; a missing, oversized or malformed file raises InputFileError."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputFileError(f"{what} not found: {path}", hint="check the path") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc}", hint="check the file") from None
    if len(raw) > max_bytes:
        raise InputFileError(
            f"{what} {path} is larger than {max_bytes:,} bytes",
            hint="check that this is the right file",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc}", hint="check the file") from None
    return parse_json(text, str(path), what)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def parse_json(text: str, origin: str, what: str = "file", max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON: NaN and Infinity, duplicate keys and nesting deeper than ``max_depth`` are
    errors too (Python's json accepts the first two, keeps the last duplicate and recurses).

    Fast path: the C parser, then one level-by-level pass that measures depth and counts the keys
    kept. Every key in the text ends in a quote followed by a colon, so when the text has exactly
    as many of those as the parsed objects have keys, no key was dropped as a duplicate; only when
    the counts differ (a duplicate, or a string holding an escaped quote and a colon) is the text
    parsed again with a hook that checks every object.
    """
    if len(text) > MAX_BYTES:
        raise InputFileError(
            f"{origin}: {what} is larger than {MAX_BYTES:,} bytes",
            hint="check that this is the right file",
        )
    with _gc_paused():  # the collector would traverse the new objects again and again
        data = _loads(text, origin, what, max_depth, None)
        depth, keys = json_shape(data, max_depth)
    if depth > max_depth:
        raise _too_deep(origin, what, max_depth)
    if keys != text.count('":') + len(_SPACED_KEY_END.findall(text)):
        _loads(text, origin, what, max_depth, _unique_keys)
    return data


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsed JSON holds no reference cycles, so collecting while it is built only costs time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_SPACED_KEY_END = re.compile(r'"[ \t\n\r]+:')


def _loads(
    text: str, origin: str, what: str, max_depth: int, hook: Callable[..., Any] | None
) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{origin}:{exc.lineno}:{exc.colno}: invalid JSON in {what}: {exc.msg}",
            hint=f"fix the JSON at line {exc.lineno}, column {exc.colno}",
        ) from None
    except _DuplicateKey as exc:
        raise _duplicate_key_error(text, origin, what, exc.key) from None
    except RecursionError:
        raise _too_deep(origin, what, max_depth) from None
    except ValueError as exc:
        raise InputFileError(
            f"{origin}: invalid JSON in {what}: {exc}", hint="use a finite number or null"
        ) from None


def json_shape(value: Any, limit: int) -> tuple[int, int]:
    """How deep ``value`` nests (a scalar is 0, ``[]`` is 1), counting at most to ``limit + 1``,
    and how many keys its objects hold. Level by level, so depth cannot exhaust the stack."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = keys = 0
    while level and depth <= limit:
        depth += 1
        below: list[Any] = []
        for item in level:
            if type(item) is dict:
                keys += len(item)
                below += [c for c in item.values() if type(c) is dict or type(c) is list]
            else:
                below += [c for c in item if type(c) is dict or type(c) is list]
        level = below
    return depth, keys


def _too_deep(origin: str, what: str, max_depth: int) -> InputFileError:
    return InputFileError(
        f"{origin}: invalid JSON in {what}: nested deeper than {max_depth} levels",
        hint="flatten the file; no curator file needs that depth",
    )


def _duplicate_key_error(text: str, origin: str, what: str, key: str) -> InputFileError:
    where = _duplicate_key_position(text)
    at = f"{origin}:{where[0]}:{where[1]}" if where else origin
    return InputFileError(
        f"{at}: invalid JSON in {what}: duplicate key {json.dumps(key, ensure_ascii=False)[:80]}"
        " in one object",
        hint="keep one of the values: with duplicate keys, readers disagree which one counts",
    )


_py_object: Any = getattr(json.decoder, "JSONObject")  # noqa: B009 (untyped in typeshed)


def _duplicate_key_position(text: str) -> tuple[int, int] | None:
    """Line and column of the object holding the first duplicate key (the error path only: the
    pure-Python scanner tells where each object starts, the fast C one does not)."""
    found: list[int] = []

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        try:
            result: tuple[Any, int] = _py_object(s_and_end, *args)
            return result
        except _DuplicateKey:
            if not found:
                found.append(s_and_end[1] - 1)
            raise

    decoder = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError, RecursionError):
        decoder.decode(text)
    if not found:
        return None
    offset = found[0]
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)


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
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomic(path: Path, data: Any, sort_keys: bool = False) -> None:
    write_text_atomic(path, dumps_stable(data, sort_keys))
