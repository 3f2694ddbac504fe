"""Guards: curator.hub.client, curator.hub.endpoint

The fake Hub speaks what huggingface_hub 2.4.0 expects: checked with the real client."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fakehub import BERT, TINY, FakeHub, FakeRepo
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401


def api(hub: FakeHub) -> object:
    from huggingface_hub import HfApi

    from curator.hub.client import prepare

    prepare()  # applies the test's environment (HF_HUB_OFFLINE unset) to huggingface_hub
    return HfApi(endpoint=hub.url)


def test_download_is_byte_identical_with_etag_and_commit(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    api(hub)
    repo = hub.repos[TINY]
    path = hf_hub_download(TINY, "model.safetensors", cache_dir=tmp_path, endpoint=hub.url)
    assert Path(path).read_bytes() == repo.files["model.safetensors"]
    # The cache names the blob after the ETag: the sha256 of an LFS file.
    blob = Path(path).resolve()
    assert blob.name == hashlib.sha256(repo.files["model.safetensors"]).hexdigest()
    assert f"snapshots/{repo.sha}/" in path


def test_range_requests(hub: FakeHub) -> None:
    import httpx2

    content = hub.repos[TINY].files["model.safetensors"]
    url = f"{hub.url}/{TINY}/resolve/main/model.safetensors"
    part = httpx2.get(url, headers={"Range": "bytes=8-107"})
    assert part.status_code == 206
    assert part.content == content[8:108]
    assert part.headers["Content-Range"] == f"bytes 8-107/{len(content)}"
    assert httpx2.get(url, headers={"Range": f"bytes={len(content)}-"}).status_code == 416
    head = httpx2.head(url)
    assert int(head.headers["Content-Length"]) == len(content)
    assert head.headers["X-Repo-Commit"] == hub.repos[TINY].sha


def test_tree_with_sizes_folders_and_pagination(hub: FakeHub) -> None:
    from huggingface_hub import RepoFile, RepoFolder

    hub.add(FakeRepo("fixture/nested", {"a.json": b"{}", "sub/b.txt": b"bb", "sub/c.bin": b"c"}))
    try:
        client = api(hub)
        top = list(client.list_repo_tree("fixture/nested"))  # type: ignore[attr-defined]
        assert [(type(e), e.path) for e in top] == [(RepoFile, "a.json"), (RepoFolder, "sub")]
        hub.page_size = 2
        every = list(client.list_repo_tree("fixture/nested", recursive=True))  # type: ignore[attr-defined]
        files = {e.path: e.size for e in every if isinstance(e, RepoFile)}
        assert files == {"a.json": 2, "sub/b.txt": 2, "sub/c.bin": 1}
        lfs = [e for e in every if isinstance(e, RepoFile) and e.lfs is not None]
        assert [e.path for e in lfs] == ["sub/c.bin"]
        assert len(hub.seen("GET", "/tree/")) > 2  # followed the Link header
    finally:
        del hub.repos["fixture/nested"]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (f"/api/models/{TINY}/revision/nope", "RevisionNotFound"),
        ("/api/models/fixture/missing", "RepoNotFound"),
        (f"/{BERT}/resolve/main/missing.json", "EntryNotFound"),
    ],
)
def test_error_codes(hub: FakeHub, path: str, error: str) -> None:
    import httpx2

    answer = httpx2.get(hub.url + path)
    assert answer.status_code == 404
    assert answer.headers["X-Error-Code"] == error
