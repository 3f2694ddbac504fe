"""Examples for every command's ``--help`` (issue 25), in one place: cli/main.py adds them as the
help's last section when it loads a command. A test checks that every command has some and that
each example names a real command."""

from __future__ import annotations

import click

M = "smollm2-135m-instruct-generic-cpu:1"  # the demo's model: `make demo` registers it
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "bench compare": ("curator bench compare old/bench-report.json bench-out/bench-report.json",),
    "bench run": (
        f"curator bench {M} --out bench-out",
        "curator bench smollm2-135m-instruct qwen2.5-0.5b --rounds 5 --record",
        "curator bench my-model --endpoint http://127.0.0.1:5273/v1 --server-pid 1234",
    ),
    "cache ls": ("curator cache ls", "curator cache list --json"),
    "cache rm": (f"curator cache rm {M}", "curator cache rm smollm2-135m-instruct --registry"),
    "cache verify": ("curator cache verify", "curator cache verify smollm2-135m-instruct"),
    "catalog list": ("curator catalog list --device cpu", "curator catalog ls --json"),
    "catalog show": ("curator catalog show qwen2.5-0.5b",),
    "chat": (
        "curator chat smollm2-135m-instruct",
        f'curator chat {M} --prompt "What is the capital of France?"',
    ),
    "compile": (
        "curator compile Qwen/Qwen2.5-0.5B-Instruct --dry-run",
        f"curator compile {GGUF}",
        "curator compile ./my-model --recipe fp32-cpu --id my-model-fp32-generic-cpu:1",
    ),
    "fidelity": (
        "curator fidelity smollm2-135m-instruct",
        f"curator fidelity {M} --record --max-kl 0.55",
    ),
    "import": ("curator import microsoft/Phi-3-mini-4k-instruct-onnx --device cpu",),
    "info": ("curator info Qwen/Qwen2.5-0.5B-Instruct", f"curator info {GGUF} --json"),
    "onboard": (
        "curator onboard Qwen/Qwen2.5-0.5B-Instruct",
        f"curator onboard {GGUF} --license apache-2.0 --out onboard-out",
    ),
    "paths": ("curator paths", "curator paths --json"),
    "publish": (f"curator publish {M} --to my-org/smollm2-135m-instruct --private",),
    "pull": (f"curator pull {M}", "curator pull --all --capability chat --fit"),
    "recipes list": ("curator recipes list", "curator recipes ls --json"),
    "recipes show": ("curator recipes show int4-cpu",),
    "register": (
        "curator register ~/.foundry/cache/models/local/smollm2-135m-instruct-generic-cpu-1",
        f"curator register {M} --capability chat --license apache-2.0",
    ),
    "registry add": ("curator registry add --file entry.json",),
    "registry diff": (
        "curator registry diff git:origin/main",
        "curator registry diff git:origin/main:registry/models.json demo-out/registry/models.json",
    ),
    "registry fragment": (f"curator registry fragment {M} --output fragment.json",),
    "registry list": ("curator registry list", "curator registry ls --json"),
    "registry matrix": ("curator registry matrix registry/candidates.json",),
    "registry merge": ("curator registry merge fragments/*.json",),
    "registry remove": (f"curator registry remove {M}",),
    "registry show": (
        "curator registry show smollm2-135m-instruct",
        f"curator registry show {M} --json",
    ),
    "registry update": (f"curator registry update {M} --capability chat --capability code",),
    "registry validate": ("curator registry validate", "curator registry validate --json"),
    "search": (
        "curator search qwen2.5 --max-params 2B --compilable",
        "curator search --local --cache-dir demo-out/foundry-cache",
    ),
    "select": ("curator select --ram-gb 8", "curator select --capability code --json"),
    "serve": (
        "curator serve",
        "curl http://127.0.0.1:5273/health",
        "curator serve --port 8080 --parallel 8",
    ),
    "smoke": ("curator smoke smollm2-135m-instruct", f"curator smoke {M} --json"),
}


def epilog(path: str) -> str | None:
    """The examples section of ``curator PATH --help`` (kept as written: ``\\b``)."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def add_examples(command: click.Command, path: str) -> None:
    """Set the examples of ``command`` (named ``path``) and of every subcommand."""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}")
        return
    text = epilog(path)
    if text and not command.epilog:
        command.epilog = text
