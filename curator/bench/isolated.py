"""Each model's in-process benchmark in its own fresh process (issue 25).

A model's peak memory is its serving process's peak resident set. Benched one after another in one
process, a model's figure also held what earlier models (and, in onboard, the earlier register and
smoke loads) left allocated: the same SmolLM2 build measured 1,056 MiB alone and 1,454 MiB after
another model, and ``bench compare`` flagged a 38% regression that was not there. So the in-process
backend runs each model in a child process started with ``spawn`` (a fresh interpreter on every
platform): its peak is that model's alone, as a ``curator bench ID`` of that model by itself
measures it. The child sends its progress lines and then its :class:`ModelResult` over a pipe.

The child also runs with glibc's allocator told to hand freed memory back (one malloc arena, large
blocks always mapped): with the defaults, freed per-request buffers stay in per-thread arenas, and
the same SmolLM2 int4 build alone in a fresh process peaked anywhere from 1,048 to 1,398 MiB over
identical runs (noise past any regression threshold); with these settings 645 MiB twice, close to
the 620-630 MiB its working set reaches. Other C libraries ignore the variables; a value the user
set is kept.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from curator.bench.backends import Backend, FoundryBackend
from curator.bench.quality import ManualScore
from curator.bench.types import BenchSettings, ModelResult, failed_result
from curator.progress import Progress
from curator.prompts import PromptSet

# curator.bench.runner.bench_model: one model's benchmark on a backend (a module-level function,
# so the spawned child receives it by reference)
ModelBench = Callable[
    [str, PromptSet, Backend, BenchSettings, Sequence[ManualScore], Progress], ModelResult
]
ALLOCATOR_ENV: Mapping[str, str] = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "262144"}
ALLOCATOR_NOTE = (
    "in-process mode: each model ran alone in its own fresh process (glibc MALLOC_ARENA_MAX=1, "
    "MALLOC_MMAP_THRESHOLD_=262144: freed memory is returned), so its peak memory is its own"
)


@contextlib.contextmanager
def _child_environment() -> Iterator[None]:
    """``ALLOCATOR_ENV`` in this process's environment while a child starts (it inherits it)."""
    added = {k: v for k, v in ALLOCATOR_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def bench_model_in_child(
    bench_model: ModelBench,
    model_id: str,
    prompt_set: PromptSet,
    cache_dir: Path,
    settings: BenchSettings,
    manual: Sequence[ManualScore],
    say: Progress,
) -> ModelResult:
    """Run ``bench_model`` (the runner's per-model benchmark, passed in: the runner calls this
    module) on a fresh Foundry backend in a child process."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(sender, bench_model, model_id, prompt_set, cache_dir, settings, tuple(manual)),
        name=f"curator-bench-{model_id}",
        daemon=True,
    )
    with _child_environment():
        child.start()
    sender.close()
    result: ModelResult | None = None
    try:
        while result is None:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                break
            if kind == "progress":
                say(str(payload))
            elif kind == "result":
                result = payload
        child.join()
    except BaseException:  # Ctrl-C or an error here: the child must not outlive the run
        child.terminate()
        child.join()
        raise
    finally:
        receiver.close()
    if result is None:
        error = f"the benchmark process of {model_id} ended without a result (exit code "
        error += f"{child.exitcode})"
        say(f"{model_id}: FAILED: {error}")
        return failed_result(model_id, error)
    return result


def _child_main(
    sender: Any,
    bench_model: ModelBench,
    model_id: str,
    prompt_set: PromptSet,
    cache_dir: Path,
    settings: BenchSettings,
    manual: tuple[ManualScore, ...],
) -> None:
    backend = FoundryBackend(cache_dir)
    try:
        result = bench_model(
            model_id,
            prompt_set,
            backend,
            settings,
            manual,
            lambda message: sender.send(("progress", message)),
        )
        sender.send(("result", result))
    except KeyboardInterrupt:  # the parent saw the same Ctrl-C and stops the run
        pass
    finally:
        with contextlib.suppress(Exception):
            backend.close()
        sender.close()
