"""``curator compile``: an Olive recipe applied to a Hugging Face model, placed in the Foundry cache.

Light to import: Olive runs in a child process; psutil/jinja2 load only when used.
"""

from __future__ import annotations

from curator.compile.api import compile_model, plan_compile
from curator.compile.types import (
    Artifact,
    CompilePlan,
    CompileRequest,
    CompileResult,
    SourceModel,
)

__all__ = [
    "Artifact",
    "CompilePlan",
    "CompileRequest",
    "CompileResult",
    "SourceModel",
    "compile_model",
    "plan_compile",
]
