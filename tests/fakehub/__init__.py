"""A loopback fake of the Hugging Face Hub's HTTP API for tests (point HF_ENDPOINT at ``url``)."""

from tests.fakehub.fixtures import (
    BERT,
    CUSTOM,
    GATED,
    GRANTED_TOKEN,
    OLD_TINY,
    PLAIN_TOKEN,
    SHARDED,
    TINY,
    build_hub,
)
from tests.fakehub.repo import FakeRepo, safetensors_counts
from tests.fakehub.server import FakeHub

__all__ = [
    "BERT",
    "CUSTOM",
    "GATED",
    "GRANTED_TOKEN",
    "OLD_TINY",
    "PLAIN_TOKEN",
    "SHARDED",
    "TINY",
    "FakeHub",
    "FakeRepo",
    "build_hub",
    "safetensors_counts",
]
