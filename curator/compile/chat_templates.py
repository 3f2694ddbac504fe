"""Chat templates for models that ship none: ``--chat-template NAME|FILE`` and ``--completion-only``.

The shipped templates live in ``curator/data/chat_templates/<name>.jinja``. A chosen template is
written into the compiled (or imported) model as ``chat_template.jinja`` and as
``tokenizer_config.json``'s ``chat_template``, so that Foundry Local's prompt template
(``inference_model.json``) and ONNX Runtime GenAI's tokenizer both use it. A completion-only model
gets ``completion.jinja``: the prompt passed through unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError, UsageProblem
from curator.jsonio import write_json_atomic, write_text_atomic

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "data" / "chat_templates"
COMPLETION = "completion"  # not a chat format: what --completion-only installs
TEMPLATE_FILE = "chat_template.jinja"
# Turn markers a template may use; each should be one token of the model's vocabulary.
_MARKER = re.compile(
    r"<\|[a-z_]+\|>|<start_of_turn>|<end_of_turn>|\[INST\]|\[/INST\]", re.IGNORECASE
)


@dataclass(frozen=True)
class ChatTemplate:
    """A template to install: ``name`` (a shipped name, or the file's name), its text and sha256."""

    name: str
    text: str
    origin: str  # "shipped" | the file's path

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def completion_only(self) -> bool:
        return self.name == COMPLETION and self.origin == "shipped"

    def manifest_record(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin, "sha256": self.sha256}


def shipped_names() -> tuple[str, ...]:
    """The names ``--chat-template`` takes (completion is --completion-only's, not listed)."""
    return tuple(sorted(p.stem for p in TEMPLATES_DIR.glob("*.jinja") if p.stem != COMPLETION))


def resolve_chat_template(name_or_file: str) -> ChatTemplate:
    """A shipped template by name, or a ``.jinja`` (or plain text) file of one's own."""
    path = Path(name_or_file).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(
                f"cannot read chat template {path}: {exc}", hint="check the file"
            ) from None
        _check_renders(text, str(path))
        return ChatTemplate(path.name, text, str(path.absolute()))
    shipped = TEMPLATES_DIR / f"{name_or_file}.jinja"
    if name_or_file in shipped_names() or name_or_file == COMPLETION:
        return ChatTemplate(name_or_file, shipped.read_text(encoding="utf-8"), "shipped")
    if "/" in name_or_file or "\\" in name_or_file or name_or_file.endswith(".jinja"):
        raise InputFileError(f"chat template file not found: {name_or_file}", hint="check the path")
    raise UsageProblem(
        f"unknown chat template {name_or_file!r}; shipped: {', '.join(shipped_names())}",
        hint="pass one of those names, or a .jinja file",
    )


def completion_template() -> ChatTemplate:
    return resolve_chat_template(COMPLETION)


def _check_renders(text: str, label: str) -> None:
    """A template that does not even render a user turn is refused before any work."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        rendered = env.from_string(text).render(
            messages=[{"role": "user", "content": "PROBE"}], add_generation_prompt=True
        )
    except TemplateError as exc:
        raise InputFileError(
            f"chat template {label} does not render: {exc}", hint="fix the Jinja template"
        ) from None
    if "PROBE" not in rendered:
        raise InputFileError(
            f"chat template {label} drops the message content", hint="fix the Jinja template"
        )


def missing_markers(template: ChatTemplate, model_dir: Path) -> tuple[str, ...]:
    """Turn markers the template writes that the model's tokenizer does not hold as tokens."""
    try:
        tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    known: set[str] = {str(t.get("content")) for t in tokenizer.get("added_tokens") or []}
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        known.update(vocab)
    return tuple(sorted({m for m in _MARKER.findall(template.text) if m not in known}))


def install(template: ChatTemplate, model_dir: Path) -> None:
    """Write the template into ``model_dir`` (chat_template.jinja and tokenizer_config.json)."""
    write_text_atomic(model_dir / TEMPLATE_FILE, template.text)
    for stale in ("chat_template.json",):  # would take precedence in some readers
        (model_dir / stale).unlink(missing_ok=True)
    config_path = model_dir / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(config, dict):
        config["chat_template"] = template.text
        write_json_atomic(config_path, config)


def is_completion_only(model_dir: Path | None) -> bool:
    """Whether the compiled directory's manifest says ``completionOnly`` (--completion-only)."""
    if model_dir is None:
        return False
    try:
        manifest = json.loads((model_dir / "curator-manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("completionOnly") is True
