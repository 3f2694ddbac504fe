"""A fidelity budget instead of a fixed recipe (issue 22): per-group sensitivity, a search for the
smallest plan that meets ``--max-kl`` / ``--min-top1`` (or the registry policy), and the plan as a
recipe file anyone can rerun.

- :mod:`curator.budget.formats`: the per-tensor formats (bits, block, symmetry, algorithm) and sizes;
- :mod:`curator.budget.groups`: tensor groups (qkv / o / gate-up / down per layer, embedding, lm_head);
- :mod:`curator.budget.sensitivity`: what each group costs at each format, cached by source sha256;
- :mod:`curator.budget.search`: the cheapest plan for a KL target (greedy on KL per byte);
- :mod:`curator.budget.recipe`: a plan as a ``CuratorModelBuilder`` recipe file;
- :mod:`curator.budget.api`: compile, measure with ``curator fidelity``, adjust, keep the smallest.

Nothing here imports torch, numpy or onnxruntime at import time.
"""

from __future__ import annotations

from curator.budget.api import (
    Budget,
    BudgetNotMet,
    BudgetResult,
    budget_for,
    check_budget,
    compile_to_budget,
    policy_budget,
)

__all__ = [
    "Budget",
    "BudgetNotMet",
    "BudgetResult",
    "budget_for",
    "check_budget",
    "compile_to_budget",
    "policy_budget",
]
