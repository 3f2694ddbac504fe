"""Hugging Face Hub: search, model facts, the compile download path, and the local caches.

huggingface_hub is imported inside the functions that use it, so importing this package is cheap.
"""

from __future__ import annotations

from curator.hub.download import download_for_compile
from curator.hub.facts import model_facts
from curator.hub.local import search_local
from curator.hub.models import (
    FactGap,
    FileEntry,
    LocalModel,
    ModelFacts,
    ModelSummary,
    RecipeFit,
)
from curator.hub.search import SORTS, LeftOut, SearchOutcome, search_hub, search_models

__all__ = [
    "SORTS",
    "FactGap",
    "FileEntry",
    "LeftOut",
    "LocalModel",
    "ModelFacts",
    "ModelSummary",
    "RecipeFit",
    "SearchOutcome",
    "download_for_compile",
    "model_facts",
    "search_hub",
    "search_local",
    "search_models",
]
