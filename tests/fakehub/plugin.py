"""pytest fixtures: one fake Hub per test session (per xdist worker), pointed at per test.

Import both names into a test module: ``from tests.fakehub.plugin import fake_hub_server, hub``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakehub.fixtures import build_hub
from tests.fakehub.server import FakeHub


@pytest.fixture(scope="session")
def fake_hub_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeHub]:
    """The fixture set on a loopback server (127.0.0.1, ephemeral port)."""
    try:
        tiny = Path(request.getfixturevalue("tiny_model_dir"))
    except pytest.FixtureLookupError:
        from curator.devmodels.tiny import build_tiny_model

        tiny = build_tiny_model(tmp_path_factory.mktemp("fakehub-tiny"))
    hub = build_hub(tiny).start()
    yield hub
    hub.stop()


@pytest.fixture
def hub(fake_hub_server: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """This test talks to the fake Hub: HF_ENDPOINT set, HF_HUB_OFFLINE unset, no token."""
    monkeypatch.setenv("HF_ENDPOINT", fake_hub_server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    fake_hub_server.page_size = 1000
    with fake_hub_server._lock:
        fake_hub_server.requests.clear()
    return fake_hub_server
