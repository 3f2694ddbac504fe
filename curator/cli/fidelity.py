"""``curator fidelity ID``: how far a compiled model's predictions drift from its fp32 source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curator.cli._options import cache_dir_option, json_option, registry_option
from curator.cli._output import Output, to_jsonable


def report_json(report: Any) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "result": to_jsonable(report.result),
        "record": report.result.to_record(),
        "thresholds": to_jsonable(report.thresholds),
        "thresholdsFrom": report.thresholds_from,
        "violations": list(report.violations),
        "manifest": to_jsonable(report.manifest),
        "registry": to_jsonable(report.registry),
    }


def _measure(out: Output, request: Any) -> Any:
    from curator.fidelity.api import run_fidelity  # start-up: kept off --help

    return run_fidelity(request, progress=out.progress)


def _print(out: Output, report: Any) -> None:
    r = report.result
    out.text(f"fidelity of {r.model} against {r.reference}")
    out.text(f"  text {r.text} ({r.tokens} tokens scored, {r.windows} window(s) of {r.window})")
    if r.peak_rss_bytes:
        held = f", reference weights held in {r.reference_dtype}" if r.reference_dtype else ""
        if r.reference_cached is None:
            how = "both models"
        elif r.reference_cached:
            how = "the compiled model; the reference read from its cache"
        else:
            how = (
                f"one model at a time: the reference {r.reference_peak_rss_bytes / 2**30:.2f} GiB"
                " (stored), then the compiled model"
            )
        out.text(f"  peak memory {r.peak_rss_bytes / 2**30:.2f} GiB ({how}{held})")
    out.table(
        [
            ("KL mean (nats)", f"{r.kl_mean:.4g}"),
            ("KL p99 (nats)", f"{r.kl_p99:.4g}"),
            ("KL max (nats)", f"{r.kl_max:.4g}"),
            ("top-1 agreement", f"{r.top1_agreement:.2%}"),
            ("perplexity", f"{r.perplexity:.4g}"),
            ("reference perplexity", f"{r.reference_perplexity:.4g}"),
        ],
        headers=("figure", "value"),
    )
    if report.manifest:
        out.text(f"recorded in {report.manifest}")
    if report.registry:
        out.text(f"recorded in {report.registry} ({r.model})")
    if not report.manifest and not report.registry:
        out.text(
            "not recorded: --record writes it into the compile manifest and the registry entry"
        )
    t = report.thresholds
    if t.max_kl is None and t.min_top1 is None:
        return
    if report.ok:
        out.text(f"within limits ({report.thresholds_from})")
    for line in report.violations:
        out.warn(f"{line} ({report.thresholds_from})")


@click.command("fidelity")
@click.argument("model_id")
@click.option(
    "--reference",
    "reference",
    default=None,
    help="fp32 reference: a Hugging Face checkpoint dir, a compiled dir, or a compiled model id "
    "[default: the source recorded in the manifest].",
)
@click.option(
    "--text",
    "text",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="UTF-8 text to score [default: the shipped public-domain text].",
)
@click.option(
    "--record",
    is_flag=True,
    help="Write the result into the compile manifest and the registry entry (else nothing is written).",
)
@click.option(
    "--max-kl",
    type=click.FloatRange(min=0),
    default=None,
    help="Fail (exit 1) if the mean KL exceeds this [default: registry policy].",
)
@click.option(
    "--min-top1",
    type=click.FloatRange(0, 1),
    default=None,
    help="Fail (exit 1) if top-1 agreement is below this, 0-1 [default: policy].",
)
@click.option(
    "--window",
    type=click.IntRange(min=2),
    default=512,
    show_default=True,
    help="Tokens per teacher-forced forward pass.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=2),
    default=None,
    help="Score only the first N tokens of the text.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the reference."
)
@cache_dir_option
@registry_option
@json_option
def fidelity(
    model_id: str,
    reference: str | None,
    text: Path | None,
    record: bool,
    max_kl: float | None,
    min_top1: float | None,
    window: int,
    max_tokens: int | None,
    threads: int | None,
    cache_dir: Path | None,
    registry: Path | None,
    as_json: bool,
) -> None:
    """Teacher-forced KL divergence, top-1 agreement and perplexity of compiled model MODEL_ID
    (an id, an id without version or an alias in the Foundry cache, or a directory) against its
    fp32 reference. Nothing is written unless --record: then the result goes into the compile
    manifest and the registry entry's `fidelity`."""
    from curator.fidelity.api import FidelityRequest, find_model  # start-up: kept off --help

    out = Output(as_json)
    find_model(model_id, cache_dir)  # an unknown model is a one-line error, before the step starts
    with out.step(f"fidelity of {model_id}"):
        report = _measure(
            out,
            FidelityRequest(
                model=model_id,
                reference=reference,
                text=text,
                cache_dir=cache_dir,
                registry=registry,
                record=record,
                max_kl=max_kl,
                min_top1=min_top1,
                window=window,
                max_tokens=max_tokens,
                threads=threads,
            ),
        )
    if as_json:
        out.json(report_json(report))
    else:
        _print(out, report)
    if not report.ok:
        raise SystemExit(1)
