"""Scrub configured upstream keys out of text an upstream sent, in every form it may echo them.

An upstream that quotes the key it was given may quote it whole or in part, upper- or
lower-cased, URL-encoded, base64-encoded (alone or inside "Bearer <key>" or
"user:<key>"), or hex-encoded. Every run of `WINDOW` characters taken from any of
those forms is replaced, case-insensitively, so a quoted tail of a key goes too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

WINDOW = 8  # shorter runs of a key are not worth hiding (OpenAI's own masks show four characters)
MASK = "***"
# Key-shaped words of any provider, configured or not: sk-..., pk-..., key-...
_KEYLIKE = re.compile(r"\b(sk|pk|rk|key)-[A-Za-z0-9_\-*]{6,}")


def encodings(secret: str) -> set[str]:
    """The forms `secret` may be echoed in, lower-cased (matching ignores case)."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), raw.hex()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        # Inside a longer base64 string the key's characters depend on its offset (mod 3);
        # the groups shared with the bytes around it are dropped.
        for offset in range(3):
            text = encode(b"\0" * offset + raw).decode()
            head = 4 if offset else 0
            tail = 4 if (offset + len(raw)) % 3 else 0
            forms.add(text[head: len(text) - tail].rstrip("="))
    return {form.lower() for form in forms if form}


class Redactor:
    """Replaces the secrets it was given, in any of their `encodings`, with `MASK`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.windows: set[str] = set()
        self.whole: set[str] = set()  # forms shorter than a window are matched whole
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        for form in encodings(secret):
            if len(form) < WINDOW:
                self.whole.add(form)
            else:
                self.windows.update(form[i: i + WINDOW] for i in range(len(form) - WINDOW + 1))

    def __call__(self, text: str) -> str:
        lowered = text.lower()
        if len(lowered) != len(text):  # a few characters change length when lower-cased
            lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
        spans: list[tuple[int, int]] = []
        for i in range(len(lowered) - WINDOW + 1):
            if lowered[i: i + WINDOW] in self.windows:
                spans.append((i, i + WINDOW))
        for form in self.whole:
            spans += [(m.start(), m.end()) for m in re.finditer(re.escape(form), lowered)]
        if spans:
            text = _mask(text, spans)
        return _KEYLIKE.sub(MASK, text)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    pieces, cursor = [], 0
    for start, end in merged:
        pieces += [text[cursor:start], MASK]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
