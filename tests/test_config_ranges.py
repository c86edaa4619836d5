"""Every numeric config key has a sane, finite range, and keys that depend on each other agree.

A file `check-config` accepts must serve: an infinite grace period, an admin port equal to
the main one or an infinite price are refused with the key and the reason, at load and at reload.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel

from gateway.cli import main
from gateway.config import (
    ApiKey,
    AuthSettings,
    BatchedSettings,
    CacheSettings,
    ConfigError,
    LimitsSettings,
    ListwiseSettings,
    ModelSettings,
    PointwiseSettings,
    ReliabilitySettings,
    ServerSettings,
    Settings,
    parse_settings,
)

# (TOML table of the section, its model): every section with numeric keys.
SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("server", ServerSettings), ("limits", LimitsSettings), ("reliability", ReliabilitySettings),
    ("cache", CacheSettings), ("listwise", ListwiseSettings), ("pointwise", PointwiseSettings),
    ("batched", BatchedSettings),
    ('models."m"', ModelSettings), ("auth.keys", ApiKey),
]
REQUIRED = {ModelSettings: 'litellm_model = "openai/m"\napi_base = "http://127.0.0.1:9/v1"',
            ApiKey: f'name = "k"\nsha256 = "{"0" * 64}"'}


NUMBERS = (int, float, int | None, float | None)


def numeric_keys() -> list[tuple[str, type[BaseModel], str]]:
    keys = []
    for table, model in SECTIONS:
        for name, field in model.model_fields.items():
            if field.annotation in NUMBERS:
                keys.append((table, model, name))
    return keys


def bounds(model: type[BaseModel], name: str) -> tuple[float | None, float | None, bool]:
    """(lower, upper, lower is exclusive) of a field, from its annotated constraints."""
    lower = upper = None
    exclusive = False
    for item in model.model_fields[name].metadata:
        if isinstance(item, annotated_types.Ge):
            lower = item.ge
        elif isinstance(item, annotated_types.Gt):
            lower, exclusive = item.gt, True
        elif isinstance(item, annotated_types.Le):
            upper = item.le
        elif isinstance(item, annotated_types.Lt):
            upper = item.lt
    return lower, upper, exclusive  # type: ignore[return-value]


def config_text(table: str, model: type[BaseModel], line: str) -> str:
    base = 'default_model = "m"\n[models."m"]\n' + REQUIRED[ModelSettings] + "\n"
    if table == 'models."m"':
        return base + line + "\n"
    if table == "auth.keys":
        return base + f"[[auth.keys]]\n{REQUIRED[ApiKey]}\n{line}\n"
    return base + f"[{table}]\n{line}\n"


def load(text: str, tmp_path: Path) -> Settings:
    return parse_settings(text.encode(), tmp_path / "config.toml")


KEYS = numeric_keys()


def test_every_section_with_numbers_is_covered() -> None:
    covered = {model for _, model, _ in KEYS}
    for model in (Settings, *[m for _, m in SECTIONS]):
        for field in model.model_fields.values():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not AuthSettings:
                assert annotation in covered, f"{annotation.__name__} has numeric keys no test covers"


@pytest.mark.parametrize(("table", "model", "name"), KEYS, ids=[f"{t}.{n}" for t, _, n in KEYS])
def test_every_numeric_key_has_a_finite_range(table: str, model: type[BaseModel], name: str) -> None:
    lower, upper, _ = bounds(model, name)
    assert lower is not None and upper is not None, f"{table}.{name} needs both a lower and an upper bound"
    assert math.isfinite(lower) and math.isfinite(upper) and lower <= upper


@pytest.mark.parametrize(("table", "model", "name"), KEYS, ids=[f"{t}.{n}" for t, _, n in KEYS])
def test_values_outside_the_range_are_rejected_with_key_and_reason(
    table: str, model: type[BaseModel], name: str, tmp_path: Path
) -> None:
    lower, upper, exclusive = bounds(model, name)
    assert lower is not None and upper is not None
    is_float = model.model_fields[name].annotation in (float, float | None)
    bad: list[Any] = [upper * 10 + 1, lower - 1]
    if exclusive:
        bad.append(lower)
    if is_float:
        bad += ["inf", "-inf", "nan"]
    key = f"{table.replace('auth.keys', 'auth.keys[0]').replace(chr(34), '')}.{name}"
    for value in bad:
        text = config_text(table, model, f"{name} = {value}")
        with pytest.raises(ConfigError) as error:
            load(text, tmp_path)
        message = str(error.value)
        assert str(tmp_path / "config.toml") in message and key in message, (value, message)


@pytest.mark.parametrize(("table", "model", "name"), KEYS, ids=[f"{t}.{n}" for t, _, n in KEYS])
def test_the_default_and_the_bounds_are_accepted(table: str, model: type[BaseModel], name: str,
                                                tmp_path: Path) -> None:
    lower, upper, exclusive = bounds(model, name)
    assert lower is not None and upper is not None
    default = model.model_fields[name].default
    values = ([] if default is None else [default]) + [upper] + ([] if exclusive else [lower])
    for value in values:
        try:
            load(config_text(table, model, f"{name} = {value!r}".replace("'", '"')), tmp_path)
        except ConfigError as error:
            # A bound may break a relation with another key's default (step >= window): that is
            # the relation's error, never this key's range.
            assert f".{name}:" not in str(error), str(error)


RELATIONS = [
    pytest.param("[server]\nport = 9000\nadmin_port = 9000", "server: admin_port 9000 is the same as port",
                 id="admin-port"),
    pytest.param("[reliability]\nrequest_timeout_seconds = 60\nmax_request_timeout_seconds = 30",
                 "max_request_timeout_seconds (30) must be at least request_timeout_seconds (60)", id="timeouts"),
    pytest.param("[reliability]\nbackoff_base_seconds = 5\nbackoff_max_seconds = 1",
                 "backoff_max_seconds (1) must be at least backoff_base_seconds (5)", id="backoff"),
    pytest.param("[reliability]\nbreaker_cooldown_seconds = 10\nbreaker_max_cooldown_seconds = 5",
                 "breaker_max_cooldown_seconds (5) must be at least breaker_cooldown_seconds (10)", id="cooldown"),
    pytest.param("[listwise]\nwindow = 10\nstep = 10", "step must be smaller than window", id="window-step"),
    pytest.param(f'[auth]\nkeys = [{{name = "a", sha256 = "{"0" * 64}"}}, {{name = "a", sha256 = "{"1" * 64}"}}]',
                 "keys: names must be unique, repeated: a", id="key-names"),
    pytest.param('[models."m"]\nlitellm_model = ""', "models.m.litellm_model: must not be empty",
                 id="empty-model"),
]


@pytest.mark.parametrize(("text", "message"), RELATIONS)
def test_keys_that_depend_on_each_other_must_agree(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(f'default_model = "m"\n[models."m"]\nlitellm_model = "openai/m"\n{text}'.replace(
            '[models."m"]\nlitellm_model = "openai/m"\n[models."m"]\n', '[models."m"]\n'), tmp_path)


@pytest.mark.parametrize("text", [
    "[server]\ngraceful_shutdown_seconds = inf", "[server]\ndrain_seconds = inf", "[listwise]\nwindow = 100000",
    '[models.gpt-4-turbo-preview]\nlitellm_model = "openai/x"\ninput_cost_per_million = inf',
    "[server]\nport = 8080\nadmin_port = 8080",
])
def test_check_config_rejects_what_would_break_serving(text: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The configs of the issue: accepted before, then crashed or hung the server."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert f"{path}:" in stderr and "Traceback" not in stderr


def test_fractions_of_a_second_of_grace_are_kept() -> None:
    from gateway.server import server_config

    settings = ServerSettings(graceful_shutdown_seconds=0.9, keep_alive_seconds=1.5, header_read_timeout_seconds=2.5)
    config = server_config(None, "127.0.0.1", 0, "warning", settings)
    assert config.timeout_graceful_shutdown == 0.9 and config.timeout_keep_alive == 1.5
    assert config.header_read_timeout == 2.5  # type: ignore[attr-defined]


def test_the_serve_port_may_not_be_the_admin_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[server]\nadmin_port = 9123")
    assert main(["serve", "--config", str(path), "--port", "9123"]) == 2  # refused before it binds anything
    assert "--port 9123 is also server.admin_port" in capsys.readouterr().err
