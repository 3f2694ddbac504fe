"""Guards: curator.bench.reports

The bench chart reads without the table (issue 25): every bar has its value written, the
titles fit inside the figure, and the legend overlaps no panel; for one, two and five models.
(The PNGs were also looked at: values at the bar ends, the legend below both panels.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curator.bench.reports import chart_figure, write_chart

IDS = [
    "smollm2-135m-instruct-generic-cpu:1",
    "smollm2-135m-instruct-fp32-generic-cpu:1",
    "qwen2.5-0.5b-instruct-generic-cpu:4",
    "phi-4-mini",
    "my-model-generic-cpu:1",
]
FIGURES = [(987.7, 1108.9, 15.6), (759.9, 1122.8, 5.3), (450.0, 620.0, 41.2), (2210.5, 3180.0, 8.9)]
FIGURES.append((120.0, None, 160.3))  # type: ignore[arg-type]


def _document(n: int) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": model_id,
                "status": "ok",
                "summary": {"ttftMs": {"p50": p50, "p95": p95}, "decodeTokensPerSec": {"mean": d}},
            }
            for model_id, (p50, p95, d) in zip(IDS[:n], FIGURES[:n], strict=True)
        ]
    }


@pytest.mark.parametrize("n", [1, 2, 5])
def test_values_titles_and_legend(n: int, tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = chart_figure(_document(n))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    whole = figure.bbox
    axes = figure.get_axes()
    texts = [t.get_text() for a in axes for t in a.texts]
    for p50, p95, decode in FIGURES[:n]:
        assert any(t.startswith(f"{p50:,.0f}") for t in texts), texts
        if p95 is not None:
            assert any(f"(p95 {p95:,.0f})" in t for t in texts)
        assert f"{decode:,.1f}" in texts
    for a in axes:  # titles inside the figure, not cut at its edge
        box = a.title.get_window_extent(renderer)
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and box.y1 <= whole.y1
    (legend,) = figure.legends
    legend_box = legend.get_window_extent(renderer)
    for a in axes:
        assert not legend_box.overlaps(a.get_window_extent(renderer))
    assert [t.get_text() for t in axes[0].get_yticklabels()] == IDS[:n][::-1]
    assert write_chart(_document(n), tmp_path / "chart.png")
