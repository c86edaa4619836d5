"""The config files `reload_under_load` reloads: valid ones that really change something, and six ways to be invalid.

Valid files cycle `[listwise] window/step` (20/10, 12/9, 15/7, 10/5: all one
call for the load's 10 documents, but 2/3/4/5 calls for a 30-document probe) and
add or remove an extra alias. Invalid files are broken in a named way, each with
the words its rejection must contain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench import harness

DEFAULT_ALIAS = harness.ALIASES["listwise"]
# (window, step) for valid configs, in turn: each is one call for the load's documents,
# and a different number of calls for the probe's.
WINDOWS = [(20, 10), (12, 9), (15, 7), (10, 5)]
UNSET_KEY_ENV = "RERANK_BENCH_SURELY_UNSET_KEY"
INVALID: list[tuple[str, str]] = [  # (how, substring of the rejection)
    ("toml-syntax", "invalid TOML"),
    ("step>=window", "step must be smaller than window"),
    ("unknown-key", "unknown key"),
    ("ghost-default", "default_model: 'ghost' is not a [models] alias"),
    ("no-prompts", "no prompt files"),
    ("uncallable-default", f"{UNSET_KEY_ENV} is not set"),
]


@dataclass(frozen=True)
class Variant:
    """One config file: valid, or broken in a named way (with the message it must be rejected with)."""

    label: str
    window: tuple[int, int]
    alias: str | None  # an extra alias (answered by the fake "reverse" model)
    broken: str | None = None
    expect_message: str = ""


INITIAL = Variant("initial", WINDOWS[0], None)


class Variants:
    """The next file to reload: valid and invalid ones each cycle through their kinds."""

    def __init__(self) -> None:
        self.valid_count = 0
        self.invalid_count = 0

    def next(self, valid: bool, current: Variant) -> Variant:
        if valid:
            self.valid_count += 1
            k = self.valid_count
            window = WINDOWS[k % len(WINDOWS)]
            alias = f"bench-extra-{k}" if k % 2 else None  # odd: add an alias; even: remove it
            label = f"window {window[0]}/{window[1]}, " + (f"+alias {alias}" if alias else "no extra alias")
            return Variant(label, window, alias)
        how, message = INVALID[self.invalid_count % len(INVALID)]
        self.invalid_count += 1
        # Broken on top of what runs now, so the only change is the breakage.
        return Variant(f"invalid: {how}", current.window, current.alias, how, message)


def window_spans(n: int, window: int, step: int) -> int:
    """How many listwise calls n documents take (gateway.listwise.window_spans, counted)."""
    calls, end = 0, n
    while True:
        calls += 1
        if end - window <= 0:
            return calls
        end -= step


def initial_extra(base: str) -> str:
    """The extra tables of the first config: what `config_text` writes for INITIAL, before harness's own."""
    return f"{base}\n\n[listwise]\nwindow = {INITIAL.window[0]}\nstep = {INITIAL.window[1]}"


def config_text(upstream_port: int, variant: Variant, base: str, scratch: Path) -> str:
    """The file for `variant`, built with harness.write_config and then broken if asked."""
    tables = [base]
    window = (5, 9) if variant.broken == "step>=window" else variant.window
    tables.append(f"[listwise]\nwindow = {window[0]}\nstep = {window[1]}")
    if variant.alias:
        tables.append(f'[models."{variant.alias}"]\nlitellm_model = "openai/reverse"\n'
                      f'api_base = "http://127.0.0.1:{upstream_port}/v1"\napi_key_env = "{harness.KEY_ENV}"\n'
                      'mode = "listwise"\ncontext_window = 128000')
    if variant.broken == "unknown-key":
        tables.append("[limits]\nmax_documentz = 5")
    if variant.broken == "uncallable-default":
        tables.append(f'[models."needs-key"]\nlitellm_model = "openai/gpt-4o"\n'
                      f'api_key_env = "{UNSET_KEY_ENV}"')
    harness.write_config(scratch, upstream_port, cache=False, extra="\n\n".join(tables))
    text = scratch.read_text()
    default_line = f'default_model = "{DEFAULT_ALIAS}"'
    if variant.broken == "toml-syntax":
        text += "\n[unterminated-table\nkey = 1\n"
    elif variant.broken == "ghost-default":
        text = text.replace(default_line, 'default_model = "ghost"')
    elif variant.broken == "no-prompts":
        text = 'prompts_dir = "/nonexistent/rerank-bench-prompts"\n' + text
    elif variant.broken == "uncallable-default":
        text = text.replace(default_line, 'default_model = "needs-key"')
    return text


def write_atomically(path: Path, text: str) -> None:
    # A watcher or a SIGHUP must never read a half-written file: that would be a failure we caused.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
