"""``curator register``, ``curator chat``, ``curator smoke`` and ``curator serve``: Foundry Local."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from curator.cli._options import (
    cache_dir_option,
    json_option,
    prompts_option,
    registry_option,
    seed_option,
)
from curator.cli._output import Output, to_jsonable
from curator.errors import CuratorError, NotFound
from curator.paths import foundry_cache_dir, registry_path
from curator.serve import limits as serve_limits

CHAT_HELP = (
    "/reset  forget the conversation\n/help   this list\nan empty line or Ctrl-D ends the chat"
)

CAPABILITIES = (
    "chat",
    "code",
    "reasoning",
    "summarization",
    "tool-calling",
    "translation",
    "math",
    "vision",
    "embeddings",
    "rag",
)


@click.command()
@click.argument("path_or_id")
@click.option("--id", "model_id", help="Model id NAME-VARIANT:VERSION [default: the manifest's].")
@click.option("--alias", help="Foundry alias shared by the variants [default: id without variant].")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    type=click.Choice(CAPABILITIES),
    help="Capability tag; repeat for several [default: chat, or the entry's].",
)
@click.option("--license", "license_id", help="SPDX license id [default: the manifest's].")
@click.option(
    "--min-ram-gb",
    type=click.FloatRange(min=0, min_open=True),
    help="RAM the model needs, GiB [default: measured peak of the load test plus headroom].",
)
@registry_option
@cache_dir_option
@json_option
def register(
    path_or_id: str,
    model_id: str | None,
    alias: str | None,
    capabilities: tuple[str, ...],
    license_id: str | None,
    min_ram_gb: float | None,
    registry: Path | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Register a compiled model directory (or an id in the cache) with Foundry Local, load-test it,
    and add or update its registry entry."""
    from curator.names import resolve_in_cache  # start-up: kept off --help
    from curator.register import register as run_register  # start-up: kept off --help

    out = Output(as_json)
    cache = foundry_cache_dir(cache_dir)
    if not Path(path_or_id).expanduser().exists():  # an id, id without version or alias
        path_or_id = resolve_in_cache(cache, path_or_id)
    with out.step("register and load-test"), suggesting(cache, path_or_id):
        result = run_register(
            path_or_id,
            cache_dir=cache,
            registry=registry_path(registry),
            model_id=model_id,
            alias=alias,
            capabilities=capabilities,
            license=license_id,
            min_ram_gb=min_ram_gb,
        )
    if as_json:
        out.json(result)
        return
    test = result.load_test
    out.text(f"{result.id}: {result.foundry_action} with Foundry Local ({result.path})")
    out.text(
        f"load test: loaded in {test.load_ms:.0f} ms, {test.completion_tokens} tokens in "
        f"{test.generate_ms:.0f} ms, peak RSS {test.peak_rss_mb:.0f} MiB -> "
        f"minRamGb {result.min_ram_gb:g}"
    )
    out.text(f"registry: entry {result.registry_action} in {result.registry}")


@click.command()
@click.argument("model_id")
@click.option("--prompt", help="Ask once and exit [default: interactive].")
@click.option("--system", help="A system message to start the conversation with.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0, max=2), default=0.0, show_default=True)
@seed_option
@cache_dir_option
def chat(
    model_id: str,
    prompt: str | None,
    system: str | None,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    cache_dir: Path | None,
) -> None:
    """Chat with a registered model, streaming tokens as they come (like `foundry model run`).

    Interactive: an empty line or Ctrl-D ends, `/reset` forgets the conversation, `/help` lists
    these (neither goes to the model).
    """
    from curator.foundry import runtime  # start-up: kept off --help
    from curator.names import load_registered  # start-up: kept off --help

    out = Output()
    with out.step(f"load {model_id}"):
        model = load_registered(runtime(foundry_cache_dir(cache_dir)), model_id)
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []

    def answer(text: str) -> None:
        history.append({"role": "user", "content": text})
        parts: list[str] = []
        for chunk in model.chat_stream(
            history, max_tokens=max_tokens, temperature=temperature, seed=seed
        ):
            parts.append(chunk.text)
            click.echo(chunk.text, nl=False)
            sys.stdout.flush()
            if chunk.usage is not None:
                click.echo()
                out.progress(
                    f"[{chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} "
                    f"completion tokens, {chunk.finish_reason}]"
                )
        history.append({"role": "assistant", "content": "".join(parts)})

    try:
        if prompt is not None:
            answer(prompt)
            return
        out.progress("type a message; an empty line or Ctrl-D ends, /reset starts over, /help")
        while True:
            try:
                line = click.prompt("", prompt_suffix="> ", default="", show_default=False)
            except (EOFError, click.Abort):
                break
            if not line.strip():
                break
            if line.strip() == "/reset":
                del history[1 if system else 0 :]
                continue
            if line.strip() in ("/help", "/?"):
                out.progress(CHAT_HELP)
                continue
            answer(line)
    finally:
        model.unload()


@click.command()
@click.argument("model_id")
@prompts_option(help="Prompt set (schemas/prompts.schema.json) [default: the shipped smoke set].")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds per prompt [default: the prompt set's].",
)
@cache_dir_option
@json_option
def smoke(
    model_id: str,
    prompts: Path | None,
    time_limit: float | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Load a registered model and run a fixed prompt set, printing each answer; exit 1 naming any
    prompt that errs, answers empty, lacks its expected words, answers degenerately (one phrase
    repeated over most of the answer, an echo of the prompt, another script than the prompt's),
    reports no usage or runs over its time limit."""
    from curator.smoke.run import run_smoke  # start-up: kept off --help

    out = Output(as_json)
    report = run_smoke(
        model_id,
        cache_dir=foundry_cache_dir(cache_dir),
        prompts=prompts,
        time_limit_sec=time_limit,
        progress=out.progress,
    )
    if as_json:
        out.json({**_fields(report), "passed": report.passed, "failed": list(report.failed)})
    else:
        out.table(
            [
                (
                    o.id,
                    "ok" if o.ok else "FAIL",
                    o.completion_tokens,
                    f"{o.seconds:.2f}",
                    _one_line(o.answer),
                )
                for o in report.outcomes
            ],
            ["prompt", "result", "tokens", "seconds", "answer"],
        )
    if not report.passed:
        failures = "; ".join(f"{o.id}: {o.error}" for o in report.outcomes if not o.ok)
        if as_json:
            raise SystemExit(1)
        raise CuratorError(
            f"smoke failed for {report.model_id} on {len(report.failed)} prompt(s): {failures}",
            hint=f"curator chat {report.model_id} to try it; curator cache verify "
            f"{report.model_id}",
        )
    out.progress(f"smoke passed: {len(report.outcomes)} prompts on {report.model_id}")


@contextlib.contextmanager
def suggesting(cache: Path, name: str) -> Iterator[None]:
    """A NotFound for ``name`` gets "did you mean" the closest model in the cache."""
    from curator.names import cache_suggestion, with_suggestion  # start-up: kept off --help

    try:
        yield
    except NotFound as exc:
        suggestion = cache_suggestion(cache, name)
        if suggestion is None:
            raise
        raise NotFound(exc.message, hint=with_suggestion(exc.hint, suggestion)) from None


def _one_line(answer: str, limit: int = 72) -> str:
    """An answer on one table line, cut to ``limit`` characters."""
    flat = " ".join(answer.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _fields(report: object) -> dict[str, object]:
    value = to_jsonable(report)
    return value if isinstance(value, dict) else {}


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5273,
    show_default=True,
    help="Port (0 picks a free one; the URL is printed on stderr).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=serve_limits.DEFAULT_PARALLEL,
    show_default=True,
    help="Generations that run at the same time on one model.",
)
@click.option(
    "--queue",
    type=click.IntRange(0, 10000),
    default=serve_limits.DEFAULT_QUEUE,
    show_default=True,
    help="Requests per model that may wait for a generation slot; more get 429 + Retry-After.",
)
@click.option(
    "--max-body-kb",
    type=click.IntRange(1, 1024 * 1024),
    default=serve_limits.DEFAULT_MAX_BODY_BYTES // 1024,
    show_default=True,
    help="Largest request body (KiB); larger ones get 413 before they are read.",
)
@click.option(
    "--max-messages",
    type=click.IntRange(1, 1_000_000),
    default=serve_limits.DEFAULT_MAX_MESSAGES,
    show_default=True,
    help="Most entries in a request's messages array.",
)
@click.option(
    "--max-prompt-chars",
    type=click.IntRange(1, 100_000_000),
    default=serve_limits.DEFAULT_MAX_PROMPT_CHARS,
    show_default=True,
    help="Most characters of message text in one request.",
)
@click.option(
    "--default-max-tokens",
    type=click.IntRange(1, 10_000_000),
    default=serve_limits.DEFAULT_DEFAULT_MAX_TOKENS,
    show_default=True,
    help="A request without max_tokens gets what its prompt leaves of the context, at most this "
    "(each running generation reserves memory for prompt + max_tokens).",
)
@cache_dir_option
def serve(
    host: str,
    port: int,
    parallel: int,
    queue: int,
    max_body_kb: int,
    max_messages: int,
    max_prompt_chars: int,
    default_max_tokens: int,
    cache_dir: Path | None,
) -> None:
    """Serve the registered models over an OpenAI-compatible HTTP API (/v1/models,
    /v1/chat/completions with and without streaming) until Ctrl-C (a clean stop, exit 0).

    GET /health answers {"status": "ok"}; each request is one line on stderr when it ends.

    Models are named by id or alias and loaded on first use. Scheduling: per model, up to
    --parallel generations run at once (each in its own session over the one loaded model) and
    up to --queue more wait in arrival order; streams get their headers at once; a full queue
    answers 429 with Retry-After. A request whose client disconnects stops within one token.
    max_tokens defaults to what fits in the model's context (at most --default-max-tokens); a
    prompt that does not fit is a 400 context_length_exceeded.
    """
    from curator.serve.app import serve as run_server  # start-up: kept off --help

    out = Output()
    limits = serve_limits.ServeLimits(
        parallel=parallel,
        queue=queue,
        max_body_bytes=max_body_kb * 1024,
        max_messages=max_messages,
        max_prompt_chars=max_prompt_chars,
        default_max_tokens=default_max_tokens,
    )

    def ready(url: str) -> None:
        out.progress(f"curator serve: listening on {url}")
        sys.stderr.flush()

    run_server(
        host, port, foundry_cache_dir(cache_dir), on_ready=ready, limits=limits, log=out.progress
    )
    out.progress("curator serve: stopped")
