"""What one request's simulated model is like: speed preset and overrides, answer quality, output shape.

Knobs come from three places, each overriding the one before:

1. the server's defaults (`python -m simulator --noise 0.2 ...`);
2. the request's model name, which picks the speed preset when it names one
   (`sim-gpt-4o`, `gpt-4-turbo-preview`; see `speed.preset_for`);
3. a path prefix: `/knobs/noise=0.2,bias=0.5,seed=1/v1/chat/completions`, so an
   `api_base` of `http://127.0.0.1:PORT/knobs/noise=0.2/v1` configures a model.

An override of a speed figure (`ttft=`, ...) replaces the preset's value, whichever
preset the request ends up with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from simulator.speed import PRESETS, Speed, preset_for


class KnobError(ValueError):
    """A knob spec that cannot be applied (unknown name, bad value, out of range)."""


@dataclass(frozen=True)
class Knobs:
    preset: str = "gpt-4-turbo"  # speed preset (simulator.speed.PRESETS)
    ttft: float | None = None  # median time to first token, seconds (None: the preset's)
    p95: float | None = None  # its 95th percentile (None: the preset's multiple of ttft; = ttft: no jitter)
    tps: float | None = None  # output tokens per second
    input: float | None = None  # seconds per 1000 prompt tokens
    scale: float = 1.0  # multiplies every duration
    noise: float = 0.0  # probability that a passage's grade is replaced by a uniformly random one
    sigma: float = 0.0  # standard deviation of gaussian noise added to each latent score, in grades
    bias: float = 0.0  # position bias: the first passage of a prompt gains this many grades over the last
    spread: float = 0.5  # softness of every reported distribution, in grades
    seed: int = 0  # answers and tie-breaks are a function of (seed, prompt); so is the latency stream
    logprobs: bool = True  # False: never return logprobs, as a model without them
    usage: bool = True  # False: omit `usage`
    errors: float = 0.0  # probability that a call fails with HTTP 500 after its time to first token

    def speed(self) -> Speed:
        base = PRESETS[self.preset]
        ttft = base.ttft if self.ttft is None else self.ttft
        # A new median keeps the preset's tail: p95 stays the same multiple of it.
        p95 = ttft * base.p95 / base.ttft if self.p95 is None else self.p95
        return Speed(ttft=ttft, p95=max(p95, ttft), tps=base.tps if self.tps is None else self.tps,
                     input=base.input if self.input is None else self.input, scale=self.scale)

    def spec(self) -> str:
        """This knob set as a path segment (only what differs from the defaults)."""
        default = Knobs()
        return ",".join(f"{f.name}={_render(getattr(self, f.name))}" for f in dataclasses.fields(self)
                        if getattr(self, f.name) != getattr(default, f.name))


_FIELDS = {f.name: f for f in dataclasses.fields(Knobs)}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _render(value: object) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def _convert(name: str, raw: str) -> object:
    kind = _FIELDS[name].type
    try:
        if name == "preset":
            if raw not in PRESETS:
                raise KnobError(f"unknown preset {raw!r} (have {', '.join(PRESETS)})")
            return raw
        if kind == "bool":
            if raw.lower() not in _TRUE | _FALSE:
                raise KnobError(f"{name} must be 1 or 0, got {raw!r}")
            return raw.lower() in _TRUE
        value: float = int(raw) if kind == "int" else float(raw)
    except ValueError as exc:
        raise KnobError(f"{name}: not a number: {raw!r}") from exc
    if name in ("noise", "errors") and not 0 <= value <= 1:
        raise KnobError(f"{name} is a probability (0..1), got {raw}")
    if name in ("ttft", "p95", "input", "sigma", "scale") and not value >= 0:
        raise KnobError(f"{name} must be >= 0, got {raw}")
    if name in ("tps", "spread") and not value > 0:
        raise KnobError(f"{name} must be > 0, got {raw}")
    if name == "bias" and not abs(value) <= 100:
        raise KnobError(f"bias must be within -100..100 grades, got {raw}")
    return value


@lru_cache(maxsize=1024)
def parse(spec: str) -> dict[str, object]:
    """`"noise=0.2,bias=0.3"` -> {"noise": 0.2, "bias": 0.3}; raises KnobError."""
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or name not in _FIELDS:
            raise KnobError(f"unknown knob {item!r} (knobs are name=value: {', '.join(_FIELDS)})")
        values[name] = _convert(name, raw.strip())
    return values


def resolve(defaults: Knobs, model: str, spec: str = "") -> Knobs:
    """The knobs of one request (see the module docstring for the order)."""
    preset = preset_for(model)
    knobs = dataclasses.replace(defaults, preset=preset) if preset else defaults
    overrides = parse(spec)
    return dataclasses.replace(knobs, **overrides) if overrides else knobs  # type: ignore[arg-type]
