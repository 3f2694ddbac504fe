"""Guards: curator.cli.foundry, curator.cli.imports

Generation on one loaded model as curator serve drives it (curator.foundry.model), in a
fresh process over the real runtime: side-by-side generations give the same answers as one at a
time, a cancel stops a stream within one token, unloading waits for running generations (and
refuses, rather than deadlocks, in a thread that holds one), and the context budget matches the
runtime's own token count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_MODEL_ID
from tests.serve_helpers import env_for, install_and_register

SCRIPT = """
import json, sys, threading, time
from curator import foundry
from curator.foundry.model import Sampling
rt = foundry.runtime()
model = rt.load(sys.argv[1])
msgs = [{"role": "user", "content": "Tell me about rivers."}]
out = {}

alone = model.chat(msgs, max_tokens=64).text
together = [None] * 4
def ask(i):
    together[i] = model.chat(msgs, max_tokens=64).text
threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
out["same_answers"] = all(t == alone for t in together)

cancel = threading.Event()
seen = []
for chunk in model.chat_stream(msgs, max_tokens=1000, cancel=cancel):
    seen.append(chunk)
    if len(seen) == 3:
        cancel.set()
out["after_cancel"] = len(seen)
out["final_chunk"] = any(c.usage is not None for c in seen)

budget = model.context_budget(msgs)
usage = model.chat(msgs, max_tokens=1).usage
out["budget"] = [budget.prompt_tokens, budget.context_length, usage.prompt_tokens]

started, resume, finished = threading.Event(), threading.Event(), threading.Event()
def holder():
    held = model.chat_stream(msgs, max_tokens=50)
    next(held)
    try:
        model.unload()
        out["unload_in_holder"] = "unloaded"
    except Exception as exc:
        out["unload_in_holder"] = type(exc).__name__
    started.set()
    resume.wait()
    for _ in held:
        pass
    finished.set()
threading.Thread(target=holder).start()
started.wait()
threading.Timer(0.5, resume.set).start()
model.unload()  # from another thread: waits for the held stream to end
# The held stream cannot end before resume is set (0.5 s later); an unload that does not wait
# returns before that. (finished.is_set() raced: the stream releases the model before the holder
# thread gets back from its loop to set it.)
out["unload_waited"] = resume.is_set()
out["unloaded"] = model.unloaded
print(json.dumps(out))
"""


def test_generation_side_by_side_cancel_unload_and_budget(
    tmp_path: Path, compiled_tiny_int4: Path
) -> None:
    env = env_for(tmp_path / "gen")
    install_and_register(env, [(compiled_tiny_int4, TINY_MODEL_ID)])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, TINY_MODEL_ID],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["same_answers"]
    assert out["after_cancel"] == 3  # nothing after the token that saw the cancel
    assert not out["final_chunk"]
    prompt_tokens, context_length, runtime_prompt_tokens = out["budget"]
    assert prompt_tokens == runtime_prompt_tokens
    assert context_length == 2048
    assert out["unload_in_holder"] == "FoundryError"
    assert out["unload_waited"]
    assert out["unloaded"]
