"""Guards: curator.cli.foundry, curator.serve.app

`curator serve` for a new user (issue 25): /health answers, one stderr line per request, and
Ctrl-C is a clean stop (exit 0, no "error: interrupted")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request


def test_health_request_log_and_a_clean_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "curator", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stderr is not None
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            match = re.search(r"listening on (http://\S+)/v1", line)
            if match:
                break
        else:
            raise AssertionError("".join(seen))
        with urllib.request.urlopen(f"{match.group(1)}/health", timeout=30) as response:
            assert json.load(response) == {"status": "ok"}
        with urllib.request.urlopen(f"{match.group(1)}/v1/models", timeout=30) as response:
            assert json.load(response)["object"] == "list"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    lines = "".join(seen).splitlines() + rest.splitlines()
    assert proc.returncode == 0, lines
    assert any(re.fullmatch(r"GET /health 200 \d+ ms", line) for line in lines), lines
    assert any(re.fullmatch(r"GET /v1/models 200 \d+ ms", line) for line in lines), lines
    assert "error: interrupted" not in rest and lines[-1] == "curator serve: stopped"
