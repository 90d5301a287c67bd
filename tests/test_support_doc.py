"""docs/support.md is generated from the format and neuron-model registries and kept current."""

from __future__ import annotations

from pathlib import Path

from sakd.app.catalog import format_rows, neuron_model_rows
from sakd.render.catalog import support_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "support.md"


def test_support_doc_is_current():
    expected = support_markdown(format_rows(), neuron_model_rows())
    assert DOC.read_text() == expected, (
        "docs/support.md is out of date: regenerate it with `sakd formats --markdown > docs/support.md`")


def test_every_registered_format_and_model_is_in_it():
    text = DOC.read_text()
    for row in format_rows():
        assert f"**{row.name}**" in text
    for row in neuron_model_rows():
        assert f"`{row.model}`" in text
