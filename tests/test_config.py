from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, Settings, load_settings
from tests.conftest import ROOT


def test_no_file_means_embedded_defaults() -> None:
    settings = load_settings(None)
    assert settings.default_model == ["gpt-4-turbo-preview", "local"]
    assert settings.models["local"].litellm_model == "local/smollm2-135m"
    model = settings.models["gpt-4-turbo-preview"]
    assert model.litellm_model == "openai/gpt-4-turbo-preview"
    assert (model.input_cost_per_million, model.output_cost_per_million) == (10.0, 30.0)
    assert (settings.listwise.window, settings.listwise.step, settings.pointwise.max_label) == (20, 10, 3)
    assert settings.limits.max_documents == 100


def test_the_default_model_ranks_in_one_round_with_hedged_calls() -> None:
    """The choice docs/strategies.md measures: batched pointwise, calibrated, inside a 5 s client timeout."""
    model = load_settings(None).models["gpt-4-turbo-preview"]
    assert model.mode == "batched" and model.hedge_after_seconds > 0 and model.output_tokens_per_second > 0
    assert load_settings(None).reliability.on_deadline == "partial"


def test_shipped_config_spells_out_the_embedded_defaults() -> None:
    assert load_settings(ROOT / "config.toml") == Settings()


def test_openai_environment_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = load_settings(ROOT / "config.toml").models["gpt-4-turbo-preview"]
    assert model.resolved_api_key() == "sk-from-env"
    assert model.resolved_api_base() == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("default_model = ", "invalid TOML", id="syntax"),
        pytest.param('default_model = "missing"', "default_model 'missing' is not one of", id="alias"),
        pytest.param("[listwise]\nwindow = 10\nstep = 10", "step must be smaller than window", id="step"),
        pytest.param("[server]\nprot = 1", "server.prot: Extra inputs are not permitted", id="typo"),
        pytest.param('[models.x]\nmode = "listwise"', "models.x.litellm_model: Field required", id="model"),
        pytest.param("[pointwise]\nconcurrency = 0", "pointwise.concurrency", id="bound"),
        pytest.param('[models.x]\nlitellm_model = "openai/x"\nmode = "fastest"', "models.x.mode", id="mode"),
        pytest.param('[reliability]\non_deadline = "retry"', "reliability.on_deadline", id="on-deadline"),
        pytest.param("[listwise]\nconsistency = 0", "listwise.consistency", id="consistency"),
    ],
)
def test_bad_files_are_rejected_with_file_key_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")


def test_relative_prompts_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('prompts_dir = "my-prompts"')
    assert load_settings(tmp_path / "config.toml").prompts_dir == str(tmp_path / "my-prompts")
