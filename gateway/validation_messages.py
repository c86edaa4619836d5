"""Pydantic's validation errors in plain words, for people editing config.toml.

"Extra inputs are not permitted" becomes "unknown key; did you mean 'port'?", and each
error is keyed by its dotted TOML path (`auth.keys[0].sha256`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

_TYPES = {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "a string in quotes",
          "dict": "a table", "list": "a list [...]", "model": "a table", "model_attributes": "a table"}


def plain_error(err: Mapping[str, Any], known_keys: Callable[[list[Any]], list[str]]) -> tuple[str, str]:
    """(dotted key, reason) for one pydantic error, worded for a person editing a TOML file.

    `known_keys(loc)` lists the keys the table at `loc` accepts, for "did you mean" hints."""
    loc = [part for part in err["loc"] if not _is_union_branch(part)]
    key = _dotted(loc)
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if len(loc) < len(err["loc"]):  # a union (default_model): say what either branch takes
        return key, f"must be an alias or a list of aliases, not {_show(value)}"
    if kind == "extra_forbidden":
        known = known_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}" if known else ""
        return key, f"unknown key{hint}"
    if kind == "missing":
        return key, "is required but not set"
    if kind.endswith(("_type", "_parsing", "_from_float")) and kind.split("_")[0] in _TYPES:
        return key, f"must be {_TYPES[kind.split('_')[0]]}, not {_show(value)}"
    bounds = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
              "less_than": "less than {lt}", "less_than_equal": "at most {le}"}
    if kind in bounds:
        return key, f"must be {bounds[kind].format(**ctx)}, not {_show(value)}"
    if kind == "string_too_short":
        return key, "must not be empty"
    if kind == "string_pattern_mismatch":
        if loc and loc[-1] == "sha256":
            return key, "must be 64 hex digits, as `rerank-gateway hash-key KEY` prints them"
        return key, f"{_show(value)} does not have the expected form ({ctx.get('pattern')})"
    if kind == "literal_error":
        return key, f"must be one of {ctx.get('expected')}, not {_show(value)}"
    return key, str(err["msg"]).removeprefix("Value error, ")


def _is_union_branch(part: object) -> bool:
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)


def _dotted(loc: list[Any]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key or "(file)"


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value) if not isinstance(value, bool) else str(value).lower()
