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
        pytest.param('default_model = "missing"', "default_model: 'missing' is not a [models] alias", id="alias"),
        pytest.param("[listwise]\nwindow = 10\nstep = 10", "step must be smaller than window", id="step"),
        pytest.param("[server]\nprot = 1", "server.prot: unknown key; did you mean 'port'?", id="typo"),
        pytest.param('[models.x]\nmode = "listwise"', "models.x.litellm_model: is required but not set", id="model"),
        pytest.param("[pointwise]\nconcurrency = 0", "pointwise.concurrency", id="bound"),
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


def settings_from(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path)


MINE = '[models.mine]\nlitellm_model = "openai/mine"\n'


def test_model_tables_extend_the_built_in_aliases(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, MINE + '[model_names]\n"rerank-v3.5" = "mine"\n')
    assert list(settings.models) == ["gpt-4-turbo-preview", "local", "mine"]
    assert settings.default_model == ["gpt-4-turbo-preview", "local"]  # still callable as before
    assert settings.resolve_model("rerank-v3.5") == "mine"  # the file's own names win ...
    assert settings.resolve_model("rerank-2") == "default"  # ... and the built-in ones stay


def test_a_table_named_like_a_built_in_replaces_it_whole(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, '[models.local]\nlitellm_model = "local/smollm2-135m"\n')
    assert settings.models["local"].mode == "listwise"  # the field default, not the built-in's "pointwise"
    assert settings.models["gpt-4-turbo-preview"] == Settings().models["gpt-4-turbo-preview"]


def test_builtin_models_false_keeps_only_the_files_own(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, 'builtin_models = false\ndefault_model = "mine"\n' + MINE)
    assert list(settings.models) == ["mine"]
    assert settings.resolve_model("rerank-v3.5") == "default"  # client names still map to the default
    with pytest.raises(ConfigError) as error:
        settings_from(tmp_path, "builtin_models = false\n" + MINE)
    assert ("default_model: 'gpt-4-turbo-preview' is not a [models] alias (aliases: mine); builtin_models = false "
            "leaves only the file's own [models.*] tables") in str(error.value)


def test_every_problem_is_reported_at_once_in_plain_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from(tmp_path, 'default_model = "ghost"\n[server]\nprot = 1\nport = "x"\n'
                                '[models.x]\nmode = "both"\nfallbacks = ["nope"]\n'
                                '[auth]\nkeys = [{name = "a", sha256 = "zz"}]\n[cache]\nttl_seconds = -1\n')
    path = tmp_path / "config.toml"
    assert error.value.problems == [
        f"{path}: default_model: 'ghost' is not a [models] alias (aliases: gpt-4-turbo-preview, local, x)",
        f"{path}: models.x.fallbacks: 'nope' is not another [models] alias",
        f"{path}: server.port: must be a whole number, not 'x'",
        f"{path}: server.prot: unknown key; did you mean 'port'?",
        f"{path}: auth.keys[0].sha256: must be 64 hex digits, as `rerank-gateway hash-key KEY` prints them",
        f"{path}: cache.ttl_seconds: must be greater than 0.0, not -1",
        f"{path}: models.x.litellm_model: is required but not set",
        f"{path}: models.x.mode: must be one of 'listwise' or 'pointwise', not 'both'",
    ]
    for wording in ("Value error", "Extra inputs", "Field required", "(top level)", "Input should"):
        assert wording not in str(error.value)
