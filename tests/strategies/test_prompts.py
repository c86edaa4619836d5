from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.strategies.prompts import default_prompts_dir, load_prompt, load_prompts, require_prompt
from tests.conftest import ROOT


def test_shipped_prompts_load_from_the_top_level_directory() -> None:
    assert default_prompts_dir() == ROOT / "prompts"
    prompts = load_prompts(default_prompts_dir())
    assert {"listwise", "pointwise"} <= set(prompts)
    assert prompts["pointwise"].labels.keys() == {0, 1, 2, 3}


def test_version_changes_with_the_file_content(tmp_path: Path) -> None:
    source = (ROOT / "prompts" / "listwise.toml").read_text()
    path = tmp_path / "listwise.toml"
    path.write_text(source)
    before = load_prompt(path).version
    path.write_text(source.replace("RankGPT", "RankBot"))
    after = load_prompt(path).version
    assert before != after and before.startswith("rankgpt-1@")


def test_document_text_is_only_ever_a_value() -> None:
    prompt = load_prompts(ROOT / "prompts")["listwise"]
    rendered = prompt.render("passage", id=1, text="costs $query and {num} ${id}")
    assert rendered == "[1] costs $query and {num} ${id}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('kind = "other"', "kind: must be one of", id="kind"),
        pytest.param('kind = "pointwise"\nsystem = "$max_label $scale"', "user: missing template", id="missing"),
        pytest.param('kind = "pointwise"\nsystem = "$max_label $scale $oops"\nuser = "$query $text $max_label"',
                     "unknown placeholders ['oops']", id="unknown"),
        pytest.param("kind = ", "cannot load prompt", id="toml"),
    ],
)
def test_broken_prompt_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_prompt(path)


def test_a_prompt_of_the_wrong_kind_is_refused() -> None:
    prompts = load_prompts(ROOT / "prompts")
    with pytest.raises(ConfigError, match="is a pointwise prompt, expected listwise"):
        require_prompt(prompts, "pointwise", "listwise")
