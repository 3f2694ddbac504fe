"""``make demo``: onboard a model end to end into ./demo-out with its own cache and registry copy
(a script beside the command line, so it may print).

With no network the model is built here: a small Qwen2 (a tokenizer trained offline, then about a
minute of training on the Python documentation that ships with CPython, so that its answers and
its fidelity figures mean something). ``DEMO_MODEL=ORG/NAME`` onboards a Hub model instead. The
same ``curator onboard`` command line runs either way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_MODEL_NAME = "curator-demo-qwen2"


def prepare_source(out: Path) -> str:
    hub_model = os.environ.get("DEMO_MODEL")
    if hub_model:
        return hub_model
    source = out / "source" / DEMO_MODEL_NAME
    if not (source / "config.json").is_file():
        from curator.devmodels.trained import build_trained_model

        print(
            f"demo: training the local model {source} (about a minute) ...",
            file=sys.stderr,
            flush=True,
        )
        partial = source.with_name(source.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build_trained_model(partial, seed=0, hidden_size=256, num_layers=4)
        partial.rename(source)
    return str(source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curator.cli.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args(argv)
    out: Path = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    registry = out / "registry" / "models.json"
    if not registry.exists():
        from curator.resources import project_root

        registry.parent.mkdir(parents=True, exist_ok=True)
        root = project_root()
        if root is not None and (root / "registry" / "models.json").is_file():
            shutil.copyfile(root / "registry" / "models.json", registry)
    source = prepare_source(out)
    onboard_args = [
        "onboard",
        source,
        "--recipe",
        "int4-cpu",
        "--registry",
        str(registry),
        "--cache-dir",
        str(out / "foundry-cache"),
        "--out",
        str(out / "report"),
    ]
    if not os.environ.get("DEMO_MODEL"):
        onboard_args += ["--license", "mit", "--capability", "chat"]
    for command in (onboard_args, ["registry", "validate", "--registry", str(registry)]):
        done = subprocess.run([sys.executable, "-m", "curator", *command], check=False)
        if done.returncode != 0:
            return done.returncode
    print(f"\ndemo: report at {out / 'report' / 'SUMMARY.md'}")
    print(f"demo: registry copy at {registry}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
