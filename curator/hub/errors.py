"""The Hub's failures as curator errors: one line of cause, a hint naming what to run next."""

from __future__ import annotations

from curator.errors import HubError

LOGIN_HINT = "log in with `hf auth login`, or `export HF_TOKEN=hf_...`"
LOCAL_HINT = "`curator search QUERY --local` searches the local Hugging Face and Foundry caches"


class HubOffline(HubError):
    """HF_HUB_OFFLINE is set, or the Hub's host cannot be reached."""


class HubGated(HubError):
    """The repository is gated and this token has not been granted access."""


class HubRepoNotFound(HubError):
    """No such repository (or it is private and this token cannot see it)."""


class HubRevisionNotFound(HubError):
    """The repository exists but not the branch, tag or commit asked for."""


class HubFileNotFound(HubError):
    """A file the repository should hold is not there."""


class HubAuthError(HubError):
    """The Hub refused the token itself (401 invalid credentials)."""


class HubStalled(HubError):
    """The Hub (or a proxy) accepted the connection but did not answer in time."""


class HubUnavailable(HubError):
    """The Hub answered with a server error (429, 5xx): it is overloaded or down."""


class HubTooLarge(HubError):
    """The Hub announced or sent more bytes than the file is known to hold."""


class HubWrongEndpoint(HubError):
    """``HF_ENDPOINT`` points at something that does not speak the Hub's API."""
