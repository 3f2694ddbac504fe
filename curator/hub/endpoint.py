"""Where the Hub is and what the environment says about it, read at each call (not at import)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "on", "yes", "true"}


def hub_endpoint() -> str:
    """``$HF_ENDPOINT`` without a trailing slash, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_requested() -> bool:
    """``HF_HUB_OFFLINE`` set to a true value (the same spellings huggingface_hub accepts)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the default."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return hf_home() / "hub"


def hf_home() -> Path:
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()) / "huggingface"


def hf_token_path() -> Path:
    """Where ``hf auth login`` keeps the token: ``$HF_TOKEN_PATH``, else ``$HF_HOME/token``."""
    explicit = os.environ.get("HF_TOKEN_PATH")
    return Path(explicit).expanduser() if explicit else hf_home() / "token"


def connect_timeout() -> float:
    """Seconds to wait for a TCP (and TLS) connection to the Hub: ``$CURATOR_HUB_CONNECT_TIMEOUT``."""
    raw = os.environ.get("CURATOR_HUB_CONNECT_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return 1.5
    return value if value > 0 else 1.5


def repo_url(repo_id: str) -> str:
    return f"{hub_endpoint()}/{repo_id}"


def read_timeout() -> float:
    """Seconds to wait for any read from the Hub: ``$CURATOR_HUB_TIMEOUT`` (default 8)."""
    return _positive_env("CURATOR_HUB_TIMEOUT", 8.0)


def deadline_seconds(default: float = 10.0) -> float:
    """Seconds all the Hub requests of ``search`` or ``info`` may take together, bodies included;
    for a transfer (a download, ``pull``, ``publish``), the longest it may go without moving
    64 KiB: ``$CURATOR_HUB_DEADLINE`` (default 10; ``publish`` passes 60)."""
    return _positive_env("CURATOR_HUB_DEADLINE", default)


def _positive_env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if 0 < value < float("inf") else default
