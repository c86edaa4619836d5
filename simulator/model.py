"""The simulated model's answers: grades in, text and token distributions out.

Every passage of a prompt gets a latent score, in grades:

    latent = observed grade + quirk + sigma * N(0, 1) + bias * (1 - position / (n - 1))

- observed grade: the judged grade, except with probability `noise` a grade drawn
  uniformly from 0..3 (so a replaced grade is still right a quarter of the time);
- quirk: a fixed offset in [-0.15, 0.15) from a hash of (seed, passage text), the
  same in every prompt: it breaks ties, deterministically and not by input order,
  and spreads expected labels within a grade without ever crossing one;
- position: 0 for the prompt's first passage, n - 1 for its last: a positive
  `bias` favours early passages (the primacy LLMs show), a negative one late ones.

The random draws come from (seed, the prompt's whole text), so an identical prompt
always gets the identical answer (temperature 0), and a reshuffled one fresh noise.
Answers: listwise sorts by latent; FIRST names the top passage, its distribution
softmax(latent / spread) over identifiers; a graded label is the nearest label to
the latent mapped onto 0..K, its distribution a discretized gaussian of width
`spread` around that point; yes/no is sigmoid((latent - 1.5) / (spread / 2)).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

from simulator.judgments import MAX_GRADE, compact
from simulator.knobs import Knobs
from simulator.reading import Task

GENERIC = "I rank passages by relevance to a query: send the query and the passages, each marked [1], [2], ..."
# Tokens that fill `top_logprobs` past the answer's real alternatives (never digits or identifiers).
_FILLERS = ("The", " ", "\n", ".", "I", "**", "Based", "Passage", "None", "-", ":", "Answer", "Sure", "Rel",
            "There", "In", "A", "#", "\"", "Score", "(")
_FILLER_MASS = 0.01
_QUIRK = 0.3


@dataclass(frozen=True)
class Slot:
    """Where the answer made a choice: text[start:end], and what it might have said instead."""

    start: int
    end: int
    options: tuple[tuple[str, float], ...]  # (text, logprob), most likely first


@dataclass(frozen=True)
class Answer:
    text: str
    slots: tuple[Slot, ...] = ()


def latent_scores(task: Task, grades: list[int], knobs: Knobs, prompt: bytes) -> list[float]:
    digest = hashlib.blake2b(prompt, digest_size=8, key=str(knobs.seed).encode()[:64]).digest()
    rng = random.Random(int.from_bytes(digest))
    n = len(grades)
    scores = []
    for i, (passage, grade) in enumerate(zip(task.passages, grades, strict=True)):
        # All three draws every time, so turning one knob does not move the others' randomness.
        replace, random_grade, gauss = rng.random(), rng.randint(0, MAX_GRADE), rng.gauss(0.0, 1.0)
        observed = random_grade if replace < knobs.noise else grade
        position = knobs.bias * (1 - i / (n - 1)) if n > 1 else 0.0
        scores.append(observed + quirk(passage.text, knobs.seed) + knobs.sigma * gauss + position)
    return scores


def quirk(text: str, seed: int) -> float:
    digest = hashlib.blake2b(compact(text).encode(), digest_size=8, key=str(seed).encode()[:64]).digest()
    return _QUIRK * (int.from_bytes(digest) / 2**64 - 0.5)


def answer(task: Task, latents: list[float], knobs: Knobs) -> Answer:
    ids = [p.ident for p in task.passages]
    if task.kind == "listwise":
        order = sorted(range(len(ids)), key=lambda i: -latents[i])
        return Answer(" > ".join(f"[{ids[i]}]" for i in order))
    if task.kind == "first":
        options = _normalized([(str(ident), s / knobs.spread) for ident, s in zip(ids, latents, strict=True)])
        return Answer(options[0][0], (Slot(0, len(options[0][0]), options),))
    if task.kind in ("pointwise", "batch"):
        lines, slots, at = [], [], 0
        for ident, latent in zip(ids, latents, strict=True):
            options = label_options(latent, task.max_label, knobs.spread)
            prefix = f"[{ident}] " if task.kind == "batch" else ""
            slots.append(Slot(at + len(prefix), at + len(prefix) + len(options[0][0]), options))
            lines.append(prefix + options[0][0])
            at += len(lines[-1]) + 1
        return Answer("\n".join(lines), tuple(slots))
    if task.kind == "yesno":
        yes = 1 / (1 + math.exp(-(latents[0] - 1.5) / (knobs.spread / 2)))
        options = _normalized([("Yes", math.log(max(yes, 1e-12))), ("No", math.log(max(1 - yes, 1e-12)))])
        return Answer(options[0][0], (Slot(0, len(options[0][0]), options),))
    return Answer(GENERIC)


def label_options(latent: float, max_label: int, spread: float) -> tuple[tuple[str, float], ...]:
    center = latent * max_label / MAX_GRADE
    width = spread * max_label / MAX_GRADE
    return _normalized([(str(k), -((k - center) ** 2) / (2 * width**2)) for k in range(max_label + 1)])


def _normalized(logits: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """Log-softmax, most likely first (ties: earlier first)."""
    top = max(v for _, v in logits)
    total = math.log(sum(math.exp(v - top) for _, v in logits)) + top
    ranked = sorted(((t, max(v - total, -100.0)) for t, v in logits), key=lambda tv: -tv[1])
    return tuple(ranked)


def token_logprobs(tokens: list[str], answer: Answer, top: int) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content`: one entry per token, each with `top` alternatives.

    A token holding a slot offers the slot's options in its place; any other token
    is near-certain. Fillers share the 1% of mass left over, so a very unlikely
    option can rank below them and drop out of a short list, as with a real model.
    """
    content, at = [], 0
    for token in tokens:
        slot = next((s for s in answer.slots if at <= s.start < at + len(token)), None)
        if slot is None:
            choices = [(token, math.log(1 - _FILLER_MASS))]
        else:
            head, tail = token[: slot.start - at], token[slot.end - at:]
            choices = [(head + text + tail, lp + math.log(1 - _FILLER_MASS)) for text, lp in slot.options]
        chosen = next((lp for text, lp in choices if text == token), choices[0][1])
        taken = {text for text, _ in choices}
        fillers = [f for f in _FILLERS if f not in taken]
        choices += [(f, math.log(_FILLER_MASS) - (j + 1) * math.log(2)) for j, f in enumerate(fillers)]
        choices.sort(key=lambda tv: -tv[1])  # stable: among equals, options before fillers
        content.append({
            "token": token, "logprob": chosen, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in choices[:top]],
        })
        at += len(token)
    return content
