"""The team registry (registry/models.json): load, validate, edit, diff, select."""

from curator.registry.document import (
    GitSource,
    empty_document,
    find_model,
    load_registry,
    load_registry_source,
    require_model,
)
from curator.registry.rules import ValidationReport, validate_document
from curator.registry.store import (
    add_model,
    edit_registry,
    remove_model,
    update_model,
    upsert_model,
)

__all__ = [
    "GitSource",
    "ValidationReport",
    "add_model",
    "edit_registry",
    "empty_document",
    "find_model",
    "load_registry",
    "load_registry_source",
    "remove_model",
    "require_model",
    "update_model",
    "upsert_model",
    "validate_document",
]
