"""Errors a user can cause: each carries a one-line cause and a hint naming what to do next.

The CLI maps every CuratorError to ``error: <cause>`` and ``hint: <hint>`` on stderr (with ``--json``:
one object ``{"error", "hint", "code", "exit_code"}`` on stdout) and exits with ``exit_code``; an
OSError of a full, read-only or forbidden disk becomes a :class:`StorageError`
(:func:`storage_error`); anything else is a bug, reported the same way as ``internal_error``, with
a traceback only with CURATOR_DEBUG=1.
"""

from __future__ import annotations

import errno
import re


class CuratorError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` 1 means a check or an operation failed."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    @property
    def code(self) -> str:
        """A stable name for scripts: the class name in snake case (``HubGated`` -> ``hub_gated``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()


class UsageProblem(CuratorError):
    """The command was asked for something malformed (bad id, unknown recipe, bad option value)."""

    exit_code = 2


class InputFileError(CuratorError):
    """A file the user named is missing, unreadable or not valid JSON."""


class RegistryError(CuratorError):
    """The registry cannot be read, or an edit was refused."""


class RegistryInvalid(RegistryError):
    """An edit or a file breaks the schema or the team's policy; ``problems`` lists each one."""

    def __init__(self, message: str, problems: tuple[str, ...], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems


class NotFound(CuratorError):
    """A model id, recipe or file that does not exist."""


class RecipeError(CuratorError):
    """A recipe file is missing or does not match the recipe schema."""


class PreflightError(CuratorError):
    """A compile would fail: found before any heavy work starts."""


class CompileError(CuratorError):
    """Olive ran but did not produce a usable model."""


class HubError(CuratorError):
    """Hugging Face Hub: offline, gated, missing repository or bad token."""


class FoundryError(CuratorError):
    """Foundry Local could not register, load or run a model."""


class BenchError(CuratorError):
    """A benchmark could not run or its input is malformed."""


class StorageError(CuratorError):
    """The disk is full or read-only, or a path may not be written: the machine's, not curator's."""


_STORAGE_HINTS = {
    errno.ENOSPC: "free disk space (or point --cache-dir / CURATOR_HOME at a larger disk) and run "
    "the command again",
    errno.EROFS: "the file system is read-only: choose a writable --cache-dir or CURATOR_HOME",
    errno.EACCES: "check the path's permissions, or choose a path you may write",
    errno.EPERM: "check the path's permissions, or choose a path you may write",
}
if hasattr(errno, "EDQUOT"):  # not on Windows, where a full disk is ENOSPC
    _STORAGE_HINTS[errno.EDQUOT] = "free space within your disk quota and run the command again"


def storage_error(exc: OSError) -> StorageError | None:
    """A full, read-only or forbidden disk as a one-line error with a hint (None for any other
    OSError, which stays a bug)."""
    hint = _STORAGE_HINTS.get(exc.errno or 0)
    if hint is None:
        return None
    where = f": {exc.filename}" if exc.filename else ""
    return StorageError(f"{exc.strerror or first_line(exc)}{where}", hint)


def first_line(exc: BaseException, *, default: str | None = None, limit: int | None = None) -> str:
    """The first non-blank line of an exception's message (a library's message often runs on for
    lines), at most ``limit`` characters; ``default`` (else the exception's type name) when blank."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return default if default is not None else type(exc).__name__
