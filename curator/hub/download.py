"""``download_for_compile``: the files a compile needs, at a pinned commit, into the HF cache."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from curator.errors import HubError
from curator.hub.client import check_repo_id, hub_errors, make_api
from curator.hub.endpoint import hf_cache_dir
from curator.hub.errors import HubOffline, HubStalled, HubUnavailable
from curator.hub.files import compile_files, weight_format
from curator.hub.local import read_json_object
from curator.hub.transport import body_limit, hub_deadline, plain_http

# The least any one answer of a download may hold (model info JSON, small files).
MIN_ANSWER_LIMIT = 8 * 2**20


def download_for_compile(
    repo_id: str, revision: str | None, cache_dir: Path | None = None
) -> tuple[Path, str]:
    """Download config, weights (safetensors, else .bin) with their index, tokenizer files, chat
    template and generation config of ``repo_id`` at ``revision``; repository code too when
    config.json has ``auto_map``. Returns (local snapshot dir, resolved commit sha).

    ``cache_dir`` is the Hugging Face hub cache (default ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``).
    Offline, or with the Hub unreachable, stalled or failing, a snapshot already in the cache is used if there is one.
    A renamed repository is downloaded and cached under its new id (the snapshot path names it).
    """
    check_repo_id(repo_id)
    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    try:
        return _download(repo_id, revision, cache)
    except (HubOffline, HubStalled, HubUnavailable) as offline:
        cached = _cached_snapshot(repo_id, revision, cache)
        if cached is None:
            raise type(offline)(
                f"{repo_id} is not in the local Hugging Face cache and {offline.message}",
                hint=offline.hint,
            ) from offline
        return cached


def _download(repo_id: str, revision: str | None, cache: Path) -> tuple[Path, str]:
    """The whole exchange is one transfer (:func:`hub_deadline` with progress): a Hub that stalls
    or trickles ends one deadline after its last real progress, a download that keeps moving goes
    on. No answer may be larger than the largest file the Hub lists (or 8 MiB)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    api = make_api()
    with hub_errors(repo_id, revision), plain_http(), hub_deadline(progress=True):
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
        # A renamed repository answers under its new id: download and cache under that id.
        repo_id = info.id or repo_id
        sha = info.sha
        if not sha:
            raise HubError(f"the Hub gave no commit sha for {repo_id}", hint="try again")
        sizes = {s.rfilename: s.size for s in info.siblings or []}
        names = list(sizes)
        auto_map = bool((info.config or {}).get("auto_map"))
        with body_limit(largest_answer(sizes.values())):
            if "config.json" in names:  # the file itself decides (the answer's copy may be partial)
                config_path = hf_hub_download(
                    repo_id, "config.json", revision=sha, cache_dir=cache, endpoint=api.endpoint
                )
                auto_map = bool(read_json_object(Path(config_path)).get("auto_map"))
            wanted = compile_files(names, with_code=auto_map)
            folder = snapshot_download(
                repo_id,
                revision=sha,
                cache_dir=cache,
                endpoint=api.endpoint,
                allow_patterns=[glob.escape(name) for name in wanted],
            )
    if (revision or "main") != sha:
        record_ref(cache, repo_id, revision or "main", sha)
    return Path(folder), sha


def largest_answer(sizes: Iterable[int | None]) -> int:
    """The most bytes one answer of a download may hold: the largest listed file, at least
    :data:`MIN_ANSWER_LIMIT` (the Hub's JSON answers); files of unknown size are bounded by what
    the Hub announces and huggingface_hub's size check."""
    known = [size for size in sizes if isinstance(size, int) and size >= 0]
    return max([MIN_ANSWER_LIMIT, *known])


def _cached_snapshot(repo_id: str, revision: str | None, cache: Path) -> tuple[Path, str] | None:
    """A snapshot of ``repo_id`` at ``revision`` already in ``cache`` that holds what a compile
    needs (config.json, and every weight shard its index names), if any."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    ref = repo_dir / "refs" / (revision or "main")
    try:
        sha = ref.read_text().strip() if ref.is_file() else (revision or "")
    except OSError:
        return None
    folder = repo_dir / "snapshots" / sha
    if not sha or not (folder / "config.json").is_file():
        return None
    names = [p.name for p in folder.iterdir()]
    if weight_format(names) is None:
        return None
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index_name in names:
            weight_map = read_json_object(folder / index_name).get("weight_map")
            shards = set(weight_map.values()) if isinstance(weight_map, dict) else set()
            if not all((folder / str(shard)).is_file() for shard in shards):
                return None
    return folder, sha


def record_ref(cache: Path, repo_id: str, revision: str, sha: str) -> None:
    """Remember ``revision`` -> ``sha`` in the cache's refs (snapshot_download got the sha only)."""
    ref = cache / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        if not ref.is_file() or ref.read_text() != sha:
            tmp = ref.with_name(f".{ref.name}.tmp")
            tmp.write_text(sha)
            tmp.replace(ref)
    except OSError:
        pass
