"""The HfApi curator uses, and the one place that turns huggingface_hub's errors into HubErrors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from curator.errors import CuratorError, HubError, UsageProblem, first_line
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
    HubStalled,
    HubTooLarge,
    HubUnavailable,
    HubWrongEndpoint,
)
from curator.hub.transport import (
    install_fail_fast_client,
    oversized_error_type,
    stalled_error_type,
    unavailable_error_type,
    unreachable_error_type,
)

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
            f"{repo_id!r} is not a Hugging Face repository id: {first_line(exc)}",
            hint="write it as ORG/NAME, e.g. Qwen/Qwen2.5-0.5B-Instruct",
        ) from exc
    except Exception as exc:
        mapped = map_error(exc, repo_id, revision)
        if mapped is None:
            raise
        raise mapped from exc


def map_error(exc: BaseException, repo_id: str | None, revision: str | None) -> HubError | None:
    """The HubError for ``exc``, or None if it is not a Hub or network failure."""
    import httpx2
    from huggingface_hub.errors import (
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        NotASafetensorsRepoError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        SafetensorsParsingError,
    )

    endpoint = hub_endpoint()
    repo = repo_id or "the repository"
    if isinstance(exc, OfflineModeIsEnabled):
        return offline_error()
    if isinstance(exc, unreachable_error_type()):
        return HubOffline(
            f"cannot reach the Hugging Face Hub at {endpoint}: {first_line(exc)}",
            hint=f"check the network connection (and HF_ENDPOINT); {LOCAL_HINT}",
        )
    if isinstance(exc, (stalled_error_type(), httpx2.TimeoutException)):
        return HubStalled(
            f"the Hugging Face Hub at {endpoint} accepted the connection but stalled: "
            f"{first_line(exc)}",
            hint="the Hub or a proxy on the way is not answering; try again later, or allow more "
            f"time with CURATOR_HUB_TIMEOUT / CURATOR_HUB_DEADLINE (seconds); {LOCAL_HINT}",
        )
    if isinstance(exc, unavailable_error_type()):
        return _unavailable(endpoint, getattr(exc, "status", None))
    if isinstance(exc, oversized_error_type()):
        return HubTooLarge(
            f"refused a download from {endpoint}: {first_line(exc)}",
            hint="the repository changed or something on the way alters files; "
            f"`curator info {repo_id or 'ORG/NAME'}` shows the sizes the Hub lists",
        )
    if isinstance(exc, (NotASafetensorsRepoError, SafetensorsParsingError)):
        return HubFileNotFound(
            f"{repo} has no readable safetensors weights at the top level: {first_line(exc)}",
            hint="adapter-only repositories and repositories with only consolidated.safetensors "
            "cannot be compiled; pick the base or a full-weight repository",
        )
    if isinstance(exc, json.JSONDecodeError):
        return HubWrongEndpoint(
            f"the server at {endpoint} did not answer with the Hub's JSON: {first_line(exc)}",
            hint=_endpoint_hint(),
        )
    if isinstance(exc, FileMetadataError):
        return HubWrongEndpoint(
            f"the server at {endpoint} does not answer like the Hugging Face Hub: {first_line(exc)}",
            hint=_endpoint_hint(),
        )
    if isinstance(exc, GatedRepoError):
        who = "this token has" if token_present() else "you are not logged in and have"
        return HubGated(
            f"{repo} is gated and {who} not been granted access",
            hint=f"request access at {endpoint}/{repo_id or ''}, then {LOGIN_HINT}"
            + (f"; `curator info {repo_id}` shows its facts meanwhile" if repo_id else ""),
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubRevisionNotFound(
            f"{repo} has no revision {revision!r}",
            hint=f"give a branch, tag or commit sha that exists; `curator info {repo_id or 'ORG/NAME'}`"
            " shows the current commit",
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        name = _file_of(exc) or first_line(exc)
        return HubFileNotFound(
            f"{repo} has no file {name} at {revision or 'main'}",
            hint=f"look at the files at {endpoint}/{repo_id or ''}/tree/{revision or 'main'}",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubRepoNotFound(
            f"no model repository {repo} on {endpoint} (or it is private)",
            hint="check the name with `curator search NAME`; for a private repository "
            + LOGIN_HINT,
        )
    if isinstance(exc, HfHubHTTPError):
        return _http_error(exc, repo_id, revision)
    if isinstance(exc, LocalEntryNotFoundError):
        cause = exc.__cause__
        if cause is not None and cause is not exc:
            mapped = map_error(cause, repo_id, revision)
            if mapped is not None:
                return mapped
        if offline_requested():
            return offline_error()
        return HubOffline(
            f"{repo} is not in the local Hugging Face cache and the Hub at {endpoint} did not "
            "serve it",
            hint=f"check the network connection (and HF_ENDPOINT); {LOCAL_HINT}",
        )
    if isinstance(exc, httpx2.TransportError):
        return HubOffline(
            f"the connection to the Hugging Face Hub at {endpoint} failed: {first_line(exc)}",
            hint=f"check the network connection, proxy settings and HF_ENDPOINT; {LOCAL_HINT}",
        )
    return None


def _http_error(exc: BaseException, repo_id: str | None, revision: str | None) -> HubError:
    """An HTTP error the library did not classify (no X-Error-Code: a mirror, a proxy, a wrong
    endpoint), by status and by the kind of URL asked for."""
    endpoint = hub_endpoint()
    repo = repo_id or "the repository"
    response = getattr(exc, "response", None)
    status = response.status_code if response is not None else None
    server_says = response.headers.get("X-Error-Message") if response is not None else None
    path = _path_of(exc)
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
    if status is not None and (status >= 500 or status in (408, 429)):
        return _unavailable(endpoint, status)
    if status == 404:
        if path.rstrip("/") in ("/api/models", ""):
            return HubWrongEndpoint(
                f"{endpoint} answered 404 for the Hub's model listing ({path or '/'})",
                hint=_endpoint_hint(),
            )
        if "/resolve/" in path:
            name = _file_of(exc) or path
            return HubFileNotFound(
                f"{repo} has no file {name} at {revision or 'main'} on {endpoint} (404)",
                hint=f"look at the files at {endpoint}/{repo_id or ''}/tree/{revision or 'main'}",
            )
        if path.startswith("/api/models/") and "/tree/" in path:
            return HubFileNotFound(
                f"{endpoint} answered 404 for the file listing of {repo}",
                hint=f"look at the files at {endpoint}/{repo_id or ''}/tree/{revision or 'main'}",
            )
        if path.startswith("/api/models/"):
            at = f" at revision {revision!r}" if revision else ""
            return HubRepoNotFound(
                f"{endpoint} has no model repository {repo}{at} (404)",
                hint="check the id with `curator search NAME`"
                + (" and the revision" if revision else "")
                + "; a mirror behind HF_ENDPOINT may not hold every repository",
            )
        return HubWrongEndpoint(f"{endpoint} answered 404 for {path}", hint=_endpoint_hint())
    return HubError(
        f"the Hub at {endpoint} answered {status} for {repo}: {server_says or first_line(exc)}",
        hint="try again in a minute; `curator search QUERY --local` works without the Hub",
    )


def _unavailable(endpoint: str, status: int | None) -> HubUnavailable:
    what = "rate-limited this client" if status == 429 else "is overloaded or down"
    return HubUnavailable(
        f"the Hugging Face Hub at {endpoint} answered {status}: it {what}",
        hint=f"try again in a few minutes; {LOCAL_HINT}",
    )


def _endpoint_hint() -> str:

    if os.environ.get("HF_ENDPOINT"):
        return (
            f"check HF_ENDPOINT (now {hub_endpoint()}): it must point at the Hugging Face Hub or a "
            "mirror of its API; unset it to use the Hub itself"
        )
    return "check the network's proxy settings: something other than the Hub answered"


def _path_of(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    try:  # httpx2 raises RuntimeError for a response built without a request
        return str(response.request.url.path) if response is not None else ""
    except (RuntimeError, AttributeError):
        return ""


def _file_of(exc: BaseException) -> str | None:
    """The file name in a ``/{repo}/resolve/{revision}/{file}`` URL of the failed request."""
    path = _path_of(exc)
    if "/resolve/" not in path:
        return None
    rest = path.split("/resolve/", 1)[1]
    return rest.split("/", 1)[1] if "/" in rest else None
