"""Does ``curator bench`` measure decode speed faithfully? For the same compiled model and prompt,
the ratio of the decode tokens/s ``curator bench`` reports (in process, through Foundry Local) to a
plain onnxruntime-genai generation loop run in a separate process. Target: 0.9-1.1, so the harness
neither inflates nor loses speed.

Both sides use the same definition: greedy decoding, the same chat template and max tokens, and
decode tokens/s = (visible tokens - 1) / (time of the last visible token - time of the first);
requests are taken in alternating turns (bench, plain, bench, ...). The target row compares the
fastest request of each side: other processes on a shared machine only ever slow a request down,
so the best of 12 is the closest either side gets to its undisturbed speed (the medians are shown
too, for the spread). The model is a random-init Qwen2 (hidden 1024, 8 layers, about 100M
parameters) compiled with ``int4-cpu``: big enough that each token costs real compute (a 2-layer
toy streams tokens faster than any consumer wakes up).

``python -m perf.bench_harness plain MODEL_DIR MESSAGES_JSON MAX_TOKENS [ROUNDS] [WARMUP]`` runs
the plain loop alone and prints JSON (the tests use it as the token-count reference).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from perf._table import Ratio

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "bench-qwen2-generic-cpu:1"
PROMPT = "Write a Python function that reverses a string, then explain it."
MAX_TOKENS = 128
ROUNDS = 4
TURNS = 3  # 12 measured requests per side


def plain_generate(model: Any, tokenizer: Any, messages: str, max_tokens: int) -> dict[str, Any]:
    """One greedy generation, timed like curator bench times a streamed request."""
    import onnxruntime_genai as og

    start = time.perf_counter()
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    prompt_ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt_ids) + max_tokens, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt_ids)
    stream = tokenizer.create_stream()
    eos = set(int(t) for t in tokenizer.eos_token_ids)
    ids: list[int] = []
    times: list[float] = []
    pieces: list[str] = []
    while not generator.is_done():
        generator.generate_next_token()
        token = int(generator.get_next_tokens()[0])
        ids.append(token)
        # Foundry streams the text of every token (an end-of-sequence token that is not a special
        # token has some) but leaves the end-of-sequence token out of completion_tokens.
        pieces.append(stream.decode(token))
        if token in eos and generator.is_done():
            break
        times.append(time.perf_counter())
    end = time.perf_counter()
    stopped_on_eos = bool(ids) and ids[-1] in eos and len(times) < len(ids)
    visible = len(times)
    decode = (
        (visible - 1) / (times[-1] - times[0]) if visible > 1 and times[-1] > times[0] else None
    )
    return {
        "promptTokens": len(prompt_ids),
        "ids": ids,
        "stoppedOnEos": stopped_on_eos,
        "text": "".join(pieces),
        "ttftMs": (times[0] - start) * 1000.0 if times else None,
        "latencyMs": (end - start) * 1000.0,
        "decodeTokensPerSec": decode,
    }


def plain_main(argv: list[str]) -> int:
    import onnxruntime_genai as og

    model_dir, messages, max_tokens = argv[0], argv[1], int(argv[2])
    rounds = int(argv[3]) if len(argv) > 3 else 1
    warmup = int(argv[4]) if len(argv) > 4 else 0
    model = og.Model(model_dir)
    tokenizer = og.Tokenizer(model)
    for _ in range(warmup):
        plain_generate(model, tokenizer, messages, max_tokens)
    runs = [plain_generate(model, tokenizer, messages, max_tokens) for _ in range(rounds)]
    result = dict(runs[0])
    result["rounds"] = [
        {k: r[k] for k in ("ttftMs", "latencyMs", "decodeTokensPerSec")} for r in runs
    ]
    print(json.dumps(result))
    return 0


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:4])} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return done.stdout


def measure(workdir: Path) -> list[Ratio]:
    from tests.serve_helpers import compiled_qwen2, env_for, install_and_register

    env = env_for(workdir)
    env.pop("FOUNDRY_LOCAL_ENDPOINT", None)
    [model_dir] = install_and_register(env, [(compiled_qwen2(MODEL_ID, 1024, 8), MODEL_ID)])
    prompts = workdir / "prompts.json"
    prompts.write_text(json.dumps({"prompts": [{"id": "p", "prompt": PROMPT}]}))
    messages = json.dumps([{"role": "user", "content": PROMPT}])

    ours: list[float] = []
    plain: list[float] = []
    ours_ttft: list[float] = []
    plain_ttft: list[float] = []
    for turn in range(TURNS):  # alternate, so drift on a shared machine hits both sides alike
        report = json.loads(
            _run(
                [
                    sys.executable,
                    "-m",
                    "curator",
                    "bench",
                    MODEL_ID,
                    "--prompts",
                    str(prompts),
                    "--rounds",
                    str(ROUNDS),
                    "--warmup",
                    "1",
                    "--max-tokens",
                    str(MAX_TOKENS),
                    "--out",
                    str(workdir / f"out{turn}"),
                    "--json",
                ],
                env,
            )
        )["report"]
        requests = report["models"][0]["requests"]
        ours += [r["decodeTokensPerSec"] for r in requests if r["decodeTokensPerSec"]]
        ours_ttft += [r["ttftMs"] for r in requests if r["ttftMs"] is not None]
        reference = json.loads(
            _run(
                [
                    sys.executable,
                    "-m",
                    "perf.bench_harness",
                    "plain",
                    str(model_dir),
                    messages,
                    str(MAX_TOKENS),
                    str(ROUNDS),
                    "1",
                ],
                env,
            )
        )
        plain += [r["decodeTokensPerSec"] for r in reference["rounds"] if r["decodeTokensPerSec"]]
        plain_ttft += [r["ttftMs"] for r in reference["rounds"] if r["ttftMs"] is not None]
    samples = {"ours": ours, "plain": plain, "oursTtftMs": ours_ttft, "plainTtftMs": plain_ttft}
    (workdir / "samples.json").write_text(json.dumps(samples, indent=1))
    best = max(ours) / max(plain)
    return [
        Ratio(
            "bench decode tok/s vs plain genai loop (best of 12, 1024x8 int4)",
            max(ours),
            max(plain),
            "tok/s",
            target="0.9-1.1",
            ok=0.9 <= best <= 1.1,
        ),
        Ratio(
            "bench decode tok/s vs plain genai loop (median, report only)",
            statistics.median(ours),
            statistics.median(plain),
            "tok/s",
        ),
        Ratio(
            "bench TTFT vs plain genai loop (best of 12, report only)",
            min(ours_ttft),
            min(plain_ttft),
            "ms",
        ),
        Ratio(
            "bench TTFT vs plain genai loop (p50, report only)",
            statistics.median(ours_ttft),
            statistics.median(plain_ttft),
            "ms",
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["plain"]:
        raise SystemExit(plain_main(sys.argv[2:]))
    for row in measure(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench-out/harness")):
        print(row)
