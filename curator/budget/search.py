"""The search: the cheapest format for every group such that the predicted KL meets a target.

Predicted KL is the sum of the groups' costs (each measured with that group alone quantized), times
a correction learnt from measuring the compiled model (sums of single-group costs under- or
over-state what all groups together do; :func:`curator.budget.api.compile_to_budget` adjusts).
Every group starts at its smallest format; the search then takes, again and again, the upgrade
that buys the most KL per byte. Upgrades run along each group's lower convex hull of
(bytes, cost), so each group's steps come in falling order of efficiency and the greedy choice is
the optimum of the relaxed problem (a multiple-choice knapsack). The greedy takes whole steps and
its last one can overshoot: on de-gridded SmolLM2 it stopped at a predicted 0.043 for targets of
0.051-0.057 (112.9 MiB). So the plan it finds is then improved by solving the knapsack itself
(:func:`_cheapest`: a dynamic programme over the groups, the cost in ``BINS`` steps of the
target), which spends what the greedy left (106.4-108.7 MiB there). Formats that decode slowly
(block 16, :func:`curator.budget.formats.decodes_slowly`) join only when the target cannot be
reached without them. Pure Python.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from curator.budget.formats import decodes_slowly
from curator.budget.sensitivity import Sensitivity


@dataclass(frozen=True)
class Option:
    format: str
    bytes: int
    cost: float


@dataclass(frozen=True)
class Choice:
    """The format chosen for one group."""

    group: str
    format: str
    bytes: int
    cost: float


@dataclass(frozen=True)
class Plan:
    """Every group's format, the predicted KL (sum of costs) and the file's predicted bytes."""

    choices: tuple[Choice, ...]
    predicted_kl: float
    bytes: int
    target_kl: float
    reachable: bool

    def format_of(self, group: str) -> str:
        return next(c.format for c in self.choices if c.group == group)

    def counts(self) -> dict[str, int]:
        """How many groups got each format (for a one-line summary)."""
        out: dict[str, int] = {}
        for choice in self.choices:
            out[choice.format] = out.get(choice.format, 0) + 1
        return dict(sorted(out.items()))


def hull(options: list[Option]) -> list[Option]:
    """The options worth considering, cheapest first: each costs more bytes and less KL than the
    one before, at a falling KL saved per byte (the lower convex hull)."""
    frontier: list[Option] = []
    for option in sorted(options, key=lambda o: (o.bytes, o.cost)):
        if frontier and option.cost >= frontier[-1].cost:
            continue  # dominated: more bytes, no less KL
        frontier.append(option)
    out: list[Option] = []
    for option in frontier:
        while len(out) >= 2:
            a, b = out[-2], out[-1]
            # drop b when a->option saves KL per byte at least as well as a->b
            if (a.cost - b.cost) * (option.bytes - a.bytes) <= (a.cost - option.cost) * (
                b.bytes - a.bytes
            ):
                out.pop()
            else:
                break
        out.append(option)
    return out


def options_of(sensitivity: Sensitivity, group: str) -> list[Option]:
    costs = sensitivity.cost.get(group, {})
    sizes = sensitivity.sizes.get(group, {})
    return [Option(name, int(sizes[name]), float(costs[name])) for name in costs if name in sizes]


def search(sensitivity: Sensitivity, target_kl: float) -> Plan:
    """The smallest plan whose summed cost is at most ``target_kl`` without the formats that
    decode slowly; with them when that plan cannot get there (then the smallest with them, or the
    most faithful plan there is, ``reachable=False``, when no plan gets there)."""
    fast = _search(sensitivity, target_kl, slow=False)
    return fast if fast.reachable else _search(sensitivity, target_kl, slow=True)


def _usable(options: list[Option], slow: bool) -> list[Option]:
    """``options`` without the slow formats (unless ``slow``, or unless they are all it has)."""
    fast = [o for o in options if not decodes_slowly(o.format)]
    return options if slow or not fast else fast


BINS = 4000  # the knapsack's cost resolution: a 4000th of the target


def _cheapest(
    options: dict[str, list[Option]], target_kl: float, bins: int = BINS
) -> dict[str, Option] | None:
    """The fewest-bytes choice of one option per group whose summed cost is at most
    ``target_kl`` (each cost rounded to ``target_kl / bins``; the caller checks the exact sum),
    or None when none fits. A dynamic programme over the groups: O(groups x options x bins)."""
    if target_kl <= 0:
        return None
    unit = target_kl / bins
    inf = float("inf")
    best: list[float] = [0.0] * (bins + 1)  # fewest bytes of the groups so far, cost <= c
    picks: list[tuple[str, list[Option], list[int]]] = []
    for name, group_options in options.items():
        usable = [o for o in group_options if round(max(o.cost, 0.0) / unit) <= bins]
        if not usable:
            return None
        fresh: list[float] = [inf] * (bins + 1)
        pick = [-1] * (bins + 1)
        for index, option in enumerate(usable):
            weight = round(max(option.cost, 0.0) / unit)
            size = option.bytes
            for c in range(weight, bins + 1):
                value = best[c - weight] + size
                if value < fresh[c]:
                    fresh[c] = value
                    pick[c] = index
        best = fresh
        picks.append((name, usable, pick))
    if best[bins] == inf:
        return None
    chosen: dict[str, Option] = {}
    c = bins
    for name, usable, pick in reversed(picks):
        option = usable[pick[c]]
        chosen[name] = option
        c -= round(max(option.cost, 0.0) / unit)
    return chosen


def _search(sensitivity: Sensitivity, target_kl: float, *, slow: bool) -> Plan:
    greedy = _greedy(sensitivity, target_kl, slow=slow)
    if not greedy.reachable:
        return greedy
    options = {g.name: _usable(options_of(sensitivity, g.name), slow) for g in sensitivity.groups}
    options = {name: found for name, found in options.items() if found}
    for attempt in range(4):  # rounding may put the exact sum a hair over: aim lower, then lower
        chosen = _cheapest(options, target_kl * (1 - 0.001 * 4**attempt), BINS)
        if chosen is None:
            break
        total = sum(o.cost for o in chosen.values())
        if total <= target_kl:
            plan = _plan(sensitivity, chosen, total, target_kl)
            return plan if plan.bytes < greedy.bytes else greedy
    return greedy


def _plan(
    sensitivity: Sensitivity, chosen: dict[str, Option], total: float, target_kl: float
) -> Plan:
    order = [g.name for g in sensitivity.groups if g.name in chosen]
    choices = tuple(
        Choice(name, chosen[name].format, chosen[name].bytes, chosen[name].cost) for name in order
    )
    return Plan(
        choices=choices,
        predicted_kl=max(total, 0.0),
        bytes=sum(c.bytes for c in choices) + sensitivity.other_bytes,
        target_kl=target_kl,
        reachable=total <= target_kl,
    )


def _greedy(sensitivity: Sensitivity, target_kl: float, *, slow: bool) -> Plan:
    hulls = {
        g.name: hull(_usable(options_of(sensitivity, g.name), slow)) for g in sensitivity.groups
    }
    hulls = {name: steps for name, steps in hulls.items() if steps}
    position = dict.fromkeys(hulls, 0)
    total = sum(steps[0].cost for steps in hulls.values())
    heap: list[tuple[float, str]] = []

    def push(name: str) -> None:
        steps, at = hulls[name], position[name]
        if at + 1 < len(steps):
            now, nxt = steps[at], steps[at + 1]
            gain = (now.cost - nxt.cost) / max(nxt.bytes - now.bytes, 1)
            heapq.heappush(heap, (-gain, name))

    for name in hulls:
        push(name)
    while total > target_kl and heap:
        _, name = heapq.heappop(heap)
        steps, at = hulls[name], position[name]
        total += steps[at + 1].cost - steps[at].cost
        position[name] = at + 1
        push(name)
    chosen = {name: hulls[name][at] for name, at in position.items()}
    return _plan(sensitivity, chosen, total, target_kl)
