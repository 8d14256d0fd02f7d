"""docs/BLOCKS.md is generated from the block catalogue and must match it."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine import docs
from engine.analysis import analyse
from engine.blocks import REGISTRY
from engine.graph import Graph
from engine.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
BLOCKS_MD = ROOT / "docs" / "BLOCKS.md"


def _sections(text: str) -> dict[str, str]:
    """Block type -> its section of the markdown (from its ### heading to the next heading)."""
    out = {}
    for chunk in text.split("\n### ")[1:]:
        heading, _, body = chunk.partition("\n")
        out[heading.strip()] = body.split("\n## ")[0]
    return out


def test_blocks_md_is_current():
    assert BLOCKS_MD.exists(), "docs/BLOCKS.md is missing: run `python -m engine.docs`"
    assert BLOCKS_MD.read_text(encoding="utf-8") == docs.blocks_markdown(), (
        "docs/BLOCKS.md is out of date: run `python -m engine.docs`")


def test_every_block_type_has_a_shape_rule():
    missing = sorted(name for name, block in REGISTRY.items() if not block.shape_rule.strip())
    assert not missing, f"declare a shape_rule in engine/blocks/ for: {', '.join(missing)}"
    assert not hasattr(docs, "SHAPE_RULES"), "shape rules are declared by the blocks, not kept in engine/docs.py"


def test_a_missing_shape_rule_stops_generation(monkeypatch):
    monkeypatch.setitem(REGISTRY, "Linear", dataclasses.replace(REGISTRY["Linear"], shape_rule=""))
    assert docs.missing_shape_rules() == ["Linear"]
    with pytest.raises(RuntimeError, match="Linear"):
        docs.blocks_markdown()


@pytest.mark.parametrize("text", [docs.blocks_markdown(), BLOCKS_MD.read_text(encoding="utf-8")
                                  if BLOCKS_MD.exists() else ""], ids=["generated", "file"])
def test_every_block_and_parameter_is_documented(text):
    sections = _sections(text)
    for type_name, block in REGISTRY.items():
        assert type_name in sections, f"{type_name} has no section in docs/BLOCKS.md"
        section = sections[type_name]
        assert f"**Shape:** {docs._escape(block.shape_rule)}" in section
        for p in block.params:
            assert f"| `{p.name}` |" in section, f"{type_name}.{p.name} is not documented"
        if block.keras and block.keras != type_name:
            assert f"`{block.keras}`" in section


def test_ports_are_described():
    sections = _sections(docs.blocks_markdown())
    assert "none" in sections["Input"].split("**Inputs:**")[1].splitlines()[0]
    assert "2 to 32" in sections["Add"]
    mha = sections["MultiheadAttention"].split("**Inputs:**")[1].splitlines()[0]
    assert "`query`, `key`, `value`" in mha and "`in`" in mha


def test_categories_appear_in_catalogue_order():
    text = docs.blocks_markdown()
    positions = [text.index(f"\n## {c}\n") for c in ("Input/Output", "Core", "Convolution", "Recurrent",
                                                     "Attention", "Merge", "Preprocessing", "Augmentation")]
    assert positions == sorted(positions)


def test_write_blocks_doc(tmp_path):
    target = docs.write_blocks_doc(tmp_path / "sub" / "BLOCKS.md")
    assert target.read_text(encoding="utf-8") == docs.blocks_markdown()


def test_docs_module_does_not_import_qt():
    code = ("import sys, engine.docs; engine.docs.blocks_markdown(); "
            "qt = ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in qt]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_format_example_is_the_digits_template():
    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/FORMAT.md has no JSON example"
    example = json.loads(blocks[0])
    graph = Graph.from_dict(example)
    assert analyse(graph).ok
    assert graph.to_dict() == load_template("digits_mlp").to_dict(), (
        "the example in docs/FORMAT.md no longer matches resources/templates/digits_mlp.json")
    assert {"description", "dataset"} <= set(example)
