"""Where Foundry Local's public model catalog is: the SDK's default, or ``$CURATOR_CATALOG_URL``.

The URL must end in ``/asset-gallery/v1.0/models`` (the SDK's catalog API: one POST with a JSON
filter, answered with ``{"value": [records]}``); a plain-http loopback URL works, which is how the
tests run against tests/fakecatalog.
"""

from __future__ import annotations

import os

CATALOG_URL_ENV = "CURATOR_CATALOG_URL"
# The SDK's built-in default (foundry-local-sdk 2.2.1), used when CURATOR_CATALOG_URL is unset.
DEFAULT_CATALOG_URL = "https://api.catalog.azureml.ms/asset-gallery/v1.0/models"


def configured_catalog_url() -> str | None:
    """``$CURATOR_CATALOG_URL`` if set (the SDK is then configured with it), else None."""
    return os.environ.get(CATALOG_URL_ENV) or None


def catalog_url() -> str:
    """The catalog URL the SDK talks to."""
    return configured_catalog_url() or DEFAULT_CATALOG_URL
