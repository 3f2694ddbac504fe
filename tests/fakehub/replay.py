"""Recorded Hub answers (tests/fakehub/recorded/, see its README) served by the fake Hub.

A recording is served at its path whatever the query string; every other path under a recorded
repository answers a plain 404 (no X-Error-Code), as a replay of model API answers would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

RECORDED_DIR = Path(__file__).with_name("recorded")


@dataclass(frozen=True)
class Recording:
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    source: dict[str, str]

    @property
    def repo_id(self) -> str:
        return self.path.removeprefix("/api/models/")

    def json(self) -> Any:
        return json.loads(self.body)


def load_recordings(directory: Path = RECORDED_DIR) -> dict[str, Recording]:
    """Every recording, by request path."""
    found: dict[str, Recording] = {}
    for file in sorted(directory.glob("*.json")):
        doc = json.loads(file.read_text(encoding="utf-8"))
        path = urlsplit(doc["request"]["uri"]).path
        response = doc["response"]
        found[path] = Recording(
            path=path,
            status=int(response["status"]),
            headers=dict(response["headers"]),
            body=response["body"].encode("utf-8"),
            source=dict(doc["source"]),
        )
    return found


def recorded_repo(recordings: dict[str, Recording], path: str) -> str | None:
    """The recorded repository ``path`` belongs to (model API or file URL), if any."""
    for recording in recordings.values():
        repo = recording.repo_id
        if path.startswith((f"/api/models/{repo}/", f"/{repo}/")):
            return repo
    return None
