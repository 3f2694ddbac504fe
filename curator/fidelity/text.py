"""The text a fidelity run reads: the shipped default or a file the user names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from curator.errors import InputFileError

DEFAULT_TEXT_NAME = "ecclesiastes-kjv.txt"
_DATA = Path(__file__).resolve().parent.parent / "data" / "fidelity"


def default_text_path() -> Path:
    """The shipped default text (public domain; see curator/data/fidelity/SOURCE.md)."""
    return _DATA / DEFAULT_TEXT_NAME


@dataclass(frozen=True)
class FidelityText:
    path: Path
    text: str
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


def load_text(path: Path | None = None) -> FidelityText:
    """Read ``path`` (default: the shipped text) as UTF-8; InputFileError when unusable."""
    chosen = path or default_text_path()
    try:
        raw = chosen.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise InputFileError(
            f"cannot read fidelity text {chosen}: {exc.strerror or exc}",
            hint="pass a readable UTF-8 file with `curator fidelity ID --text FILE`",
        ) from exc
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"fidelity text {chosen} is not UTF-8 ({exc.reason} at byte {exc.start})",
            hint="convert it with `iconv -t UTF-8` or pass another `--text FILE`",
        ) from exc
    if not text.strip():
        raise InputFileError(
            f"fidelity text {chosen} is empty",
            hint="pass a file of a few thousand words with `--text FILE`",
        )
    return FidelityText(path=chosen, text=text, sha256=hashlib.sha256(raw).hexdigest())
