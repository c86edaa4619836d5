from __future__ import annotations

import json
from pathlib import Path
from string import Template

import pytest

from gateway.config import ConfigError
from gateway.strategies.prompts import default_prompts_dir, format_string, load_prompt, load_prompts, require_prompt
from tests.conftest import ROOT


def test_shipped_prompts_load_from_the_top_level_directory() -> None:
    assert default_prompts_dir() == ROOT / "prompts"
    prompts = load_prompts(default_prompts_dir())
    assert {"listwise", "rankgpt", "pointwise", "batched"} <= set(prompts)
    assert (prompts["listwise"].format, prompts["rankgpt"].format) == ("single", "multiturn")
    assert prompts["pointwise"].labels.keys() == {0, 1, 2, 3}


def test_version_changes_with_the_file_content(tmp_path: Path) -> None:
    source = (ROOT / "prompts" / "rankgpt.toml").read_text()
    path = tmp_path / "rankgpt.toml"
    path.write_text(source)
    before = load_prompt(path).version
    path.write_text(source.replace("RankGPT", "RankBot"))
    after = load_prompt(path).version
    assert before != after and before.startswith("rankgpt-2@")


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
        pytest.param('kind = "listwise"\nformat = "xml"', "format: must be one of", id="format"),
        pytest.param('kind = "listwise"\nformat = "multiturn"\nsystem = ""\nprefix = ""\npassage = "$id $text"\n'
                     'suffix = ""\nfirst_suffix = ""', "prefix_ack: missing template", id="multiturn-acks"),
        pytest.param('kind = "listwise"\nformat = "single"\nsystem = ""\nprefix = ""\npassage = "$id $text"\n'
                     'suffix = ""', "first_suffix: missing template", id="first-suffix"),
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


@pytest.mark.parametrize("text", [
    "[$id] $text", "{literal} ${id}th costs $$5 {{x}}", "$query.$instruction", "no placeholders }{",
])
def test_compiled_templates_render_exactly_what_string_template_does(text: str) -> None:
    values = {"id": 7, "text": "a {brace} and $dollar", "query": "q {0}", "instruction": "", "x": 1}
    template = Template(text)
    assert format_string(template).format_map(values) == template.substitute(values)


@pytest.mark.parametrize("text", ["[$id] $text", "{literal} ${id}th {{id}} costs $$5 $text", "only $text", "none"])
def test_passages_render_numbered_from_one_exactly_as_string_template_does(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text('kind = "listwise"\nformat = "single"\nsystem = ""\nprefix = ""\nsuffix = ""\n'
                    f'first_suffix = ""\npassage = {json.dumps(text)}\n')
    texts = ["a {0} and $dollar", "{text} ${id}"]
    assert load_prompt(path).render_passages(texts) == [Template(text).substitute(id=i, text=t)
                                                         for i, t in enumerate(texts, start=1)]


def test_every_shipped_template_renders_as_string_template_would() -> None:
    values = {"id": 3, "text": "t {x} $y", "num": 20, "query": "q", "instruction": "\nInstruction: i",
              "max_label": 3, "scale": "0 = no", "passages": "[1] a"}
    for prompt in load_prompts(ROOT / "prompts").values():
        for part, template in prompt.templates.items():
            assert prompt.render(part, **values) == template.substitute(values), (prompt.name, part)
