"""JSON files: strict reading with line/column errors, stable formatting and atomic writes.

Reading is strict because the files come from pull requests and other machines: NaN/Infinity,
numbers out of range (``1e400``, which Python reads as Infinity, and integers past +-2**53 or
longer than 20 digits), lone UTF-16 surrogates (``"\ud800"``, which no UTF-8 writer can write back),
duplicate keys (which Python's json would resolve silently, last one wins), nesting deeper than
MAX_DEPTH, files larger than MAX_BYTES and paths that are not regular files (a FIFO would block
the read for ever) are errors with a line and column, never tracebacks or silent data loss.

Writing is the mirror image: ``dumps_strict`` refuses anything the strict reader would refuse, so
curator never writes a file it cannot read back.
"""

from __future__ import annotations

import contextlib
import gc
import json
import json.decoder
import json.scanner
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curator.errors import InputFileError

MAX_DEPTH = 64  # the registry nests 6 deep; recursive readers stay far from Python's limit
MAX_BYTES = 64 * 2**20  # about 30,000 registry entries with a benchmark run each
# Integers are exact only up to 2**53 in JavaScript, jq and most JSON readers (RFC 7493, I-JSON):
# larger ones mean different numbers to different readers. No curator field needs more (a byte
# count of 2**53 is 8 PiB).
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INTEGER_DIGITS = 20  # checked before int() converts the text (400 digits cost time and memory)


def require_regular_file(path: Path, what: str = "file") -> os.stat_result:
    """``os.stat(path)`` when ``path`` is a regular file (through symlinks), else InputFileError.

    Checked before any open: opening a FIFO for reading blocks until a writer comes (for ever), a
    device or socket is no file to parse, and a directory gives an error naming no cause.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{what} not found: {path}", hint="check the path") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc}", hint="check the file") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(
            f"{what} {path} is not a regular file (it is {_file_kind(info.st_mode)})",
            hint="pass the path of a JSON file",
        )
    return info


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a file"


def read_json(path: Path, what: str = "file", max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``path``; a missing, oversized, malformed or not regular file raises InputFileError."""
    require_regular_file(path, what)
    try:
        # O_NONBLOCK where it exists: should the path become a FIFO between the check and the open,
        # the open returns at once instead of waiting for a writer (and fstat then refuses it).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise InputFileError(
                    f"{what} {path} is not a regular file", hint="pass the path of a JSON file"
                )
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


class _BadValue(ValueError):
    """A token the strict reader refuses; ``token`` is its text, found again for its position."""

    def __init__(self, token: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.token = token
        self.message = message
        self.hint = hint


def _reject_constant(name: str) -> Any:
    raise _BadValue(name, f"{name} is not a JSON number", "use a finite number or null")


def _strict_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _BadValue(
            text,
            f"number {_short(text)} is out of range (larger than any finite 64-bit float)",
            "use a finite number, at most about 1.8e308",
        )
    return value


def _strict_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    value = int(text) if digits <= _MAX_INTEGER_DIGITS else None
    if value is None or not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise _BadValue(
            text,
            f"integer {_short(text)} is out of range (beyond +-2**53-1, where JSON readers "
            "disagree on its value)",
            f"use an integer between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}",
        )
    return value


def _printable(text: str) -> str:
    """``text`` with line breaks and other invisible characters written as escapes (one line)."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable() or c == " "
        else f"\\u{ord(c):04x}"
        if ord(c) < 0x10000
        else f"\\U{ord(c):08x}"
        for c in text
    )


def _short(token: str) -> str:
    return token if len(token) <= 40 else f"{token[:20]}…({len(token):,} characters)"


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
    if _SURROGATE_ESCAPE.search(text):  # rare: only then are the escapes decoded one by one
        _check_surrogates(text, origin, what)
    raw = _RAW_SURROGATE.search(text)  # only a str built in memory: decoded UTF-8 has none
    if raw:
        raise InputFileError(
            f"{_at(text, origin, raw.start())}: invalid JSON in {what}: lone surrogate "
            f"U+{ord(raw.group()):04X} (half of a UTF-16 pair; UTF-8 cannot hold it)",
            hint="write the character itself",
        )
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
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_strict_float,
            parse_int=_strict_int,
            object_pairs_hook=hook,
        )
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{origin}:{exc.lineno}:{exc.colno}: invalid JSON in {what}: {exc.msg}",
            hint=f"fix the JSON at line {exc.lineno}, column {exc.colno}",
        ) from None
    except _DuplicateKey as exc:
        raise _duplicate_key_error(text, origin, what, exc.key) from None
    except RecursionError:
        raise _too_deep(origin, what, max_depth) from None
    except _BadValue as exc:
        raise InputFileError(
            f"{_at(text, origin, _token_offset(text, exc.token))}: invalid JSON in {what}: "
            f"{exc.message}",
            hint=exc.hint,
        ) from None
    except ValueError as exc:  # not expected past the hooks above; still one line, no traceback
        raise InputFileError(
            f"{origin}: invalid JSON in {what}: {_short(str(exc))}", hint="check the file"
        ) from None


# Outside strings, valid JSON up to the first refused token is strings, numbers, literals and
# punctuation: this finds the tokens in document order (used on the error path only).
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?'
)
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F]")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def _token_offset(text: str, token: str) -> int | None:
    """Where the first occurrence of ``token`` (a number or NaN/Infinity) stands outside strings."""
    for match in _TOKEN.finditer(text):
        if match.group() == token:
            return match.start()
    return None


def _at(text: str, origin: str, offset: int | None) -> str:
    if offset is None:
        return origin
    line = text.count("\n", 0, offset) + 1
    return f"{origin}:{line}:{offset - text.rfind(chr(10), 0, offset)}"


def _check_surrogates(text: str, origin: str, what: str) -> None:
    """A ``\\uD800``-``\\uDFFF`` escape that is not half of a high-low pair is a lone surrogate: a
    string no UTF-8 file can hold (writing it back would fail), refused with its position."""
    for token in _TOKEN.finditer(text):
        body = token.group()
        if body[:1] != '"' or not _SURROGATE_ESCAPE.search(body):
            continue
        lone = _lone_surrogate(body)
        if lone is not None:
            raise InputFileError(
                f"{_at(text, origin, token.start() + lone)}: invalid JSON in {what}: lone "
                f"surrogate {body[lone : lone + 6]} (half of a UTF-16 pair; UTF-8 cannot hold it)",
                hint="write the character itself, or both halves of its pair",
            )


def _lone_surrogate(string_token: str) -> int | None:
    """Offset of the first unpaired surrogate escape in a JSON string token, or None."""
    high: int | None = None  # a high half waiting for its low half right after it
    previous_end = -1
    for escape in _ESCAPE.finditer(string_token, 1):
        code = int(escape.group(1), 16) if escape.group(1) else -1
        if high is not None:
            if escape.start() == previous_end and 0xDC00 <= code < 0xE000:
                high = None
                previous_end = escape.end()
                continue
            return high
        if 0xD800 <= code < 0xDC00:
            high = escape.start()
        elif 0xDC00 <= code < 0xE000:
            return escape.start()
        previous_end = escape.end()
    return high


_RAW_SURROGATE = re.compile("[\ud800-\udfff]")


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
        f"{at}: invalid JSON in {what}: duplicate key "
        f"{_printable(json.dumps(key, ensure_ascii=False)[:80])} in one object",
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


def dumps_strict(data: Any, sort_keys: bool = False, what: str = "file") -> str:
    """``dumps_stable``, refusing what the strict reader would refuse (NaN, Infinity, integers
    past +-2**53-1, lone surrogates, nesting past MAX_DEPTH): the text is read back with
    ``parse_json`` before it is returned, so curator never writes a file it cannot read."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys, allow_nan=False)
    except ValueError:  # NaN or Infinity ("Out of range float values are not JSON compliant")
        raise InputFileError(
            f"cannot write {what}: a number is NaN or Infinity, which JSON cannot hold",
            hint="use finite numbers",
        ) from None
    except RecursionError:
        raise _too_deep(what, what, MAX_DEPTH) from None
    try:
        parse_json(text, "text", "JSON")
    except InputFileError as exc:
        reason = exc.message.partition(": invalid JSON in JSON: ")[2] or exc.message
        raise InputFileError(
            f"cannot write {what}: it would not read back: {reason}", hint=exc.hint
        ) from None
    return text + "\n"


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
        from curator.portable import replace_file  # start-up: jsonio is on curator --help's path

        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomic(path: Path, data: Any, sort_keys: bool = False, strict: bool = False) -> None:
    """Write ``data`` atomically; ``strict``: only what ``read_json`` reads back (dumps_strict)."""
    text = dumps_strict(data, sort_keys, str(path)) if strict else dumps_stable(data, sort_keys)
    write_text_atomic(path, text)
