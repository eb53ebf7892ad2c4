"""`harness new generator`: the package layout, the adapter derived from the template, refusals."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import tomllib

from harness.contract import all_passed, check_generator
from harness.errors import UsageError
from harness.scaffold import adapter_source, new_generator


def test_scaffold_package_is_complete_and_passes_the_contract(tmp_path: Path):
    result = new_generator("cardio-gan2", tmp_path)
    root = tmp_path / "echobench-cardio-gan2"
    assert result.root == root and result.class_name == "CardioGan2Generator"
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "echobench-cardio-gan2"
    assert meta["project"]["dependencies"] == ["echobench"]
    assert meta["project"]["entry-points"]["echobench.generators"] == {
        "cardio-gan2": "echobench_cardio_gan2.adapter:CardioGan2Generator"}
    adapter = (root / "src" / "echobench_cardio_gan2" / "adapter.py").read_text()
    assert "Template" not in adapter and 'name = "cardio-gan2"' in adapter and "PLACEHOLDER" in adapter
    test_text = (root / "tests" / "test_contract.py").read_text()
    assert "assert_generator_contract(CardioGan2Generator" in test_text

    spec = importlib.util.spec_from_file_location("_scaffolded_adapter", root / "src" / "echobench_cardio_gan2" / "adapter.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        results = check_generator(module.CardioGan2Generator)
    finally:
        sys.modules.pop(spec.name, None)
    assert all_passed(results), results


def test_adapter_is_the_template_text_with_names_substituted():
    template = (Path(__file__).resolve().parents[2] / "generators" / "template" / "adapter.py").read_text()
    text = adapter_source("x-y", "XYGenerator")
    assert text.count("\n") == template.count("\n") + 1  # one added line: the registered name
    assert text.replace("XYGenerator", "TemplateGenerator").replace("XYConfig", "TemplateConfig").count("def ") == template.count("def ")


@pytest.mark.parametrize("name", ["Bad", "1gan", "a", "has space", "real"])
def test_bad_or_taken_names_are_refused(tmp_path: Path, name):
    with pytest.raises(UsageError):
        new_generator(name, tmp_path)


def test_existing_folder_is_not_overwritten(tmp_path: Path):
    new_generator("mine", tmp_path)
    with pytest.raises(UsageError, match="already exists"):
        new_generator("mine", tmp_path)
