"""Guards: curator.errors, curator.cli.main

The README's troubleshooting table quotes real messages (issue 25: it quoted one that no
longer existed): every fixed piece of each quoted `error: ...` (the text between the `...`
placeholders) is in curator's source."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def _troubleshooting_quotes() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`error: ([^`]+)`", section)


def test_every_quoted_error_is_in_the_code() -> None:
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((REPO_ROOT / "curator").rglob("*.py"))
    )
    quotes = _troubleshooting_quotes()
    assert len(quotes) >= 8, quotes
    missing = [
        (quote, piece)
        for quote in quotes
        for piece in (p.strip() for p in quote.split("..."))
        if piece and piece not in source
    ]
    assert missing == []
