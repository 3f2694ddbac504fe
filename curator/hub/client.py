"""The HfApi curator uses, and the one place that turns huggingface_hub's errors into HubErrors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from curator.errors import CuratorError, HubError, UsageProblem
from curator.hub.endpoint import hf_cache_dir, hf_token_path, hub_endpoint, offline_requested
from curator.hub.errors import (
    LOCAL_HINT,
    LOGIN_HINT,
    HubAuthError,
    HubFileNotFound,
    HubGated,
    HubOffline,
    HubRepoNotFound,
    HubRevisionNotFound,
)
from curator.hub.transport import install_fail_fast_client, unreachable_error_type

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def prepare() -> None:
    """Apply the environment as it is now: offline switch, fail-fast client. Raise if offline."""
    from huggingface_hub import constants

    # huggingface_hub reads these once, at import; curator honours the environment at each call.
    constants.HF_HUB_OFFLINE = offline_requested()
    constants.HF_HUB_CACHE = str(hf_cache_dir())
    constants.HF_TOKEN_PATH = str(hf_token_path())
    install_fail_fast_client()
    if constants.HF_HUB_OFFLINE:
        raise offline_error()


def make_api() -> HfApi:
    """An HfApi for ``$HF_ENDPOINT`` with huggingface_hub's usual token resolution (HF_TOKEN, then
    the token ``hf auth login`` saved)."""
    from huggingface_hub import HfApi

    prepare()
    return HfApi(endpoint=hub_endpoint())


def check_repo_id(repo_id: str) -> None:
    """UsageProblem (exit 2) unless ``repo_id`` is a valid Hub repository id."""
    from huggingface_hub.utils._validators import validate_repo_id

    with hub_errors(repo_id):
        validate_repo_id(repo_id)


def offline_error() -> HubOffline:
    return HubOffline(
        "the Hugging Face Hub is switched off: HF_HUB_OFFLINE is set",
        hint=f"unset HF_HUB_OFFLINE to reach the Hub; {LOCAL_HINT}",
    )


def token_present() -> bool:
    from huggingface_hub import get_token

    return bool(os.environ.get("HF_TOKEN") or get_token())


@contextmanager
def hub_errors(repo_id: str | None = None, revision: str | None = None) -> Iterator[None]:
    """Re-raise huggingface_hub and network errors as HubError subclasses with hints."""
    from huggingface_hub.errors import HFValidationError

    try:
        yield
    except CuratorError:
        raise
    except HFValidationError as exc:
        raise UsageProblem(
            f"{repo_id!r} is not a Hugging Face repository id: {_first_line(exc)}",
            hint="write it as ORG/NAME, e.g. Qwen/Qwen2.5-0.5B-Instruct",
        ) from exc
    except Exception as exc:
        mapped = map_error(exc, repo_id, revision)
        if mapped is None:
            raise
        raise mapped from exc


def map_error(exc: BaseException, repo_id: str | None, revision: str | None) -> HubError | None:
    """The HubError for ``exc``, or None if it is not a Hub or network failure."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = hub_endpoint()
    repo = repo_id or "the repository"
    if isinstance(exc, OfflineModeIsEnabled):
        return offline_error()
    if isinstance(exc, unreachable_error_type()):
        return HubOffline(
            f"cannot reach the Hugging Face Hub at {endpoint}: {_first_line(exc)}",
            hint=f"check the network connection (and HF_ENDPOINT); {LOCAL_HINT}",
        )
    if isinstance(exc, GatedRepoError):
        who = "this token has" if token_present() else "you are not logged in and have"
        return HubGated(
            f"{repo} is gated and {who} not been granted access",
            hint=f"request access at {endpoint}/{repo_id or ''}, then {LOGIN_HINT}",
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubRevisionNotFound(
            f"{repo} has no revision {revision!r}",
            hint=f"give a branch, tag or commit sha that exists; `curator info {repo_id or 'ORG/NAME'}`"
            " shows the current commit",
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubFileNotFound(
            f"{repo} lacks a file it needs: {_first_line(exc)}",
            hint=f"look at the files at {endpoint}/{repo_id or ''}/tree/{revision or 'main'}",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubRepoNotFound(
            f"no model repository {repo} on {endpoint} (or it is private)",
            hint="check the name with `curator search NAME`; for a private repository "
            + LOGIN_HINT,
        )
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        server_says = (
            exc.response.headers.get("X-Error-Message") if exc.response is not None else None
        )
        if status == 401:
            return HubAuthError(
                f"the Hub refused the Hugging Face token ({server_says or '401 Unauthorized'})",
                hint="`hf auth login` with a valid token, or `export HF_TOKEN=hf_...` (or unset a "
                "stale HF_TOKEN)",
            )
        if status == 403:
            return HubGated(
                f"the Hub refused access to {repo} (403: {server_says or 'forbidden'})",
                hint=f"request access at {endpoint}/{repo_id or ''}; make sure the token has read "
                f"permission, then {LOGIN_HINT}",
            )
        return HubError(
            f"the Hub answered {status} for {repo}: {_first_line(exc)}",
            hint="try again in a minute; `curator search QUERY --local` works without the Hub",
        )
    if isinstance(exc, LocalEntryNotFoundError):
        return HubOffline(
            f"{repo} is not in the local Hugging Face cache and the Hub is not reachable",
            hint=f"connect to the network or unset HF_HUB_OFFLINE; {LOCAL_HINT}",
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
