"""Prompt templates, loaded from `prompts/*.toml` at start-up.

Templates use `string.Template` ($name) placeholders: document text is only
ever a substituted value, so braces or dollar signs inside it mean nothing.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from gateway.config import ConfigError, config_error

# The placeholders each template may use. `instruction` is "" unless the
# client sent one, in which case it is "\nInstruction: <text>".
_LISTWISE = {"num", "query", "instruction"}
_REQUIRED = {
    # `suffix` asks for a permutation, `first_suffix` for the single best identifier (FIRST).
    "listwise": {"system": set(), "prefix": _LISTWISE, "passage": {"id", "text"}, "suffix": _LISTWISE,
                 "first_suffix": _LISTWISE},
    "pointwise": {"system": {"max_label", "scale"}, "user": {"query", "text", "max_label", "instruction"}},
    "batched": {"system": {"max_label", "scale"}, "passage": {"id", "text"},
                "user": {"query", "passages", "num", "max_label", "instruction"}},
}
# Listwise prompts come in two formats: "single" puts every passage in one user message
# (RankZephyr's template); "multiturn" gives each passage its own user turn, acknowledged by
# the assistant (RankGPT's), which needs two more templates.
FORMATS = {"single": {}, "multiturn": {"prefix_ack": set(), "passage_ack": {"id"}}}


@dataclass(frozen=True)
class Prompt:
    """One strategy's templates; `version` changes whenever the file's content does."""

    name: str
    kind: str
    version: str
    templates: dict[str, Template]
    labels: dict[int, str]
    path: Path | None = None  # the file it was loaded from, for error messages
    format: str = ""  # listwise: "single" or "multiturn"
    # Each template as a str.format string: rendered in C, where Template.substitute runs a
    # regex callback per placeholder (a 100-document miss renders a few thousand).
    _formats: dict[str, str] = field(init=False, repr=False, compare=False)
    # The passage template with ($id, $text) as positional fields: a window's lines render in one map.
    _numbered: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_formats", {k: format_string(t) for k, t in self.templates.items()})
        passage = self.templates.get("passage")
        object.__setattr__(self, "_numbered", format_string(passage, _NUMBERED) if passage else None)

    def render(self, part: str, **values: object) -> str:
        return self._formats[part].format_map(values)

    def render_passages(self, texts: Sequence[str]) -> list[str]:
        """The `passage` template for each of `texts`, with `$id` 1, 2, ..."""
        if self._numbered is None:
            raise KeyError("passage")
        return list(map(self._numbered.format, range(1, len(texts) + 1), texts))


_NUMBERED = {"id": 0, "text": 1}


def format_string(template: Template, positions: dict[str, int] | None = None) -> str:
    """`template` as a str.format string that renders the same: literal braces doubled, `$$` a dollar;
    with `positions`, those placeholders become positional fields."""
    def part(match: re.Match[str]) -> str:
        named = match.group("named") or match.group("braced")
        if named is not None:
            return "{" + str(positions.get(named, named) if positions else named) + "}"
        if match.group("escaped") is not None:
            return "$"
        raise ValueError(f"invalid placeholder in template: {match.group()!r}")

    out, at = [], 0
    for match in template.pattern.finditer(template.template):
        out += [template.template[at:match.start()].replace("{", "{{").replace("}", "}}"), part(match)]
        at = match.end()
    out.append(template.template[at:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def default_prompts_dir() -> Path:
    package = Path(__file__).resolve().parents[1]  # gateway/
    bundled = package / "_prompts"  # where a built wheel carries them
    return bundled if bundled.is_dir() else package.parent / "prompts"


def load_prompt(path: Path) -> Prompt:
    """One prompt file; a ConfigError lists every problem in it, each with the file and key."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot load prompt: {exc}") from exc
    kind = data.get("kind")
    if kind not in _REQUIRED:
        raise ConfigError(f"{path}: kind: must be one of {sorted(_REQUIRED)}, not {kind!r}")
    required = dict(_REQUIRED[kind])
    form = ""
    if kind == "listwise":
        form = data.get("format", "multiturn")
        if form not in FORMATS:
            raise ConfigError(f"{path}: format: must be one of {sorted(FORMATS)}, not {form!r}")
        required.update(FORMATS[form])
    templates: dict[str, Template] = {}
    problems = []
    for part, placeholders in required.items():
        text = data.get(part)
        if not isinstance(text, str):
            problems.append(f"{path}: {part}: missing template (a {kind} prompt needs {', '.join(required)})")
            continue
        template = Template(text)
        if not template.is_valid():
            problems.append(f"{path}: {part}: invalid $placeholder syntax (write $$ for a literal $)")
            continue
        unknown = set(template.get_identifiers()) - placeholders
        if unknown:
            known = ", ".join(f"${p}" for p in sorted(placeholders)) or "none"
            problems.append(f"{path}: {part}: unknown placeholders {sorted(unknown)} (known here: {known})")
        templates[part] = template
    try:
        labels = {int(k): str(v) for k, v in data.get("labels", {}).items()}
    except (AttributeError, ValueError):
        problems.append(f"{path}: labels: must be a table of whole-number keys, such as 0 = \"...\"")
        labels = {}
    if problems:
        raise config_error(problems)
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return Prompt(path.stem, kind, f"{data.get('version', path.stem)}@{digest}", templates, labels, path, form)


def load_prompts(directory: Path) -> dict[str, Prompt]:
    """Every prompt file in `directory`; a ConfigError lists the problems of all of them."""
    prompts, problems = {}, []
    for path in sorted(directory.glob("*.toml")):
        try:
            prompts[path.stem] = load_prompt(path)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise config_error(problems)
    if not prompts:
        raise ConfigError(f"{directory}: no prompt files (*.toml)")
    return prompts


def require_prompt(prompts: dict[str, Prompt], name: str, kind: str, key: str | None = None) -> Prompt:
    """The prompt a setting (`key`, by default `<kind>.prompt`) names, of the kind it must be."""
    key = key or f"{kind}.prompt"
    prompt = prompts.get(name)
    if prompt is None:
        raise ConfigError(f"{key}: no prompt file {name}.toml (prompt files: {', '.join(sorted(prompts))})")
    if prompt.kind != kind:
        raise ConfigError(f"{key}: {prompt.path or name}: is a {prompt.kind} prompt, expected {kind}")
    return prompt
