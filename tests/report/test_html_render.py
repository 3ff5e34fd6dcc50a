"""HTML reports without a browser: dispatch, size, self-containment, tolerance of odd input, atomic output."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sample_compare import compare_document
from samples import determinism_document, invariance_document, tokens_document

from precdiff.errors import InputError
from precdiff.report.html import kind_of, render_file, render_html, write_html
from precdiff.report.html.compare import module_kind

SAMPLES = {
    "compare": compare_document(layers=4, tokens=12),
    "invariance": invariance_document(),
    "determinism": determinism_document(),
    "tokens": tokens_document(),
}


@pytest.mark.parametrize("kind", SAMPLES)
def test_each_kind_renders_one_self_contained_page(kind: str) -> None:
    document = SAMPLES[kind]
    assert kind_of(document) == kind
    page = render_html(document)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert f'<body data-kind="{kind}">' in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert (
        csp is not None
        and "default-src 'none'" in csp.group(1)
        and "unsafe-inline'" not in csp.group(1).split("script-src")[1].split(";")[0]
    )
    # Nothing to load: no src/href attribute, no CSS url(), no @import, no <link>.
    assert not re.search(r"\s(src|href)\s*=", page)
    assert "url(" not in page and "@import" not in page and "<link" not in page


def test_compare_shows_the_optional_fields_of_other_features() -> None:
    page = render_html(compare_document(layers=4, tokens=12))
    assert "aten.mm.default#0" in page  # verdict.op
    assert "who is wrong" in page and "40× further" in page
    assert 'id="heat-tokens"' in page and 'id="heat-kinds"' in page
    assert "812.5" in page  # massive activation ratio
    assert "0.5 ulp" in page  # margin in ulps
    assert "new_field_from_the_future" in page  # unknown fields are shown, not dropped
    assert "near-tie" in page and 'class="tok first-diff"' in page


def test_outputs_sections_show_overlap_rule_and_a_lone_point() -> None:
    document = compare_document(layers=2, tokens=6, optional=False)
    document["logprobs"].update(chosen_delta=[None, 0.5, None, None, 0.25, 0.125], positions=10)
    page = render_html(document)
    assert "mean 97.00%, min 80.00% (k = 20)" in page  # top-k overlap
    assert "the first 6 of 10 positions are listed" in page
    assert "both margins ≤ max(0.01, 16·u(BF16)) = 0.0625 nats (no top logit stored)" in page
    assert 'class="badge warn">near-tie<' in page
    # The chosen token's |Δlogprob|: position 1 alone is drawn as a tick, 4-5 as a line.
    chosen = re.search(r'data-name="\|Δlogprob\| of the chosen token"[^>]*><path d="([^"]*)"', page)
    assert chosen is not None and chosen.group(1).count("h6") == 1 and chosen.group(1).count("M") == 2
    document["generation"]["near_tie"] = False
    assert 'class="badge bad">not a near-tie<' in render_html(document)


def test_8b_module_level_compare_is_under_2_mb() -> None:
    # 32 layers × 13 module outputs + 4 outside = 420 tensors, and a 32 × 512 layer × token matrix.
    document = compare_document(layers=32, tokens=512)
    assert len(document["tensors"]) == 420
    page = render_html(document)
    size = len(page.encode("utf-8"))
    assert size <= 2 * 1024 * 1024, size
    assert page.count("<tr") >= 420 + 34  # every tensor row and every stage row is in the file
    assert 'data-cells="416"' in page and f'data-cells="{32 * 512}"' in page


def _mutations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each top-level key removed, set to None, to a string and to a list of junk; nested rows too."""
    out = []
    for key in document:
        for replacement in (None, "junk", [1, "x", None], {}):
            changed = copy.deepcopy(document)
            if replacement is None:
                del changed[key]
            else:
                changed[key] = replacement
            out.append(changed)
    for key in ("tensors", "layers", "completions", "records", "alignment", "pitfalls", "outputs"):
        if isinstance(document.get(key), list) and document[key]:
            changed = copy.deepcopy(document)
            changed[key] = [{"unexpected": True}, None, 3] + [dict.fromkeys(document[key][0])]
            out.append(changed)
    return out


@pytest.mark.parametrize("kind", SAMPLES)
def test_missing_or_odd_fields_never_crash(kind: str) -> None:
    for document in _mutations(SAMPLES[kind]):
        if kind_of(document) is None:
            with pytest.raises(InputError):
                render_html(document)
            continue
        assert "</html>" in render_html(document)


def test_minimal_documents_render() -> None:
    assert "UNKNOWN" in render_html({"verdict": {}, "tensors": []})
    for schema in ("precdiff.invariance", "precdiff.determinism", "precdiff.tokens"):
        assert "</html>" in render_html({"schema": schema})


def test_names_from_the_document_are_escaped() -> None:
    document = compare_document(layers=2, tokens=4, optional=False)
    document["tensors"][1]["name"] = "<script>alert(1)</script>"
    document["verdict"]["message"] = '"><img src=x>'
    page = render_html(document)
    assert "<script>alert(1)" not in page and "<img src=x>" not in page
    assert page.count("<script>") == 1  # the report's own script only


@pytest.mark.parametrize(
    ("name", "layer", "role", "kind"),
    [
        ("model.layers.3.self_attn.q_proj", 3, "output", "self_attn.q_proj"),
        ("model.layers.3", 3, "output", "output"),
        ("model.layers.3[0]", 3, "output", "output[0]"),
        ("model.layers.3.self_attn[0]", 3, "output", "self_attn[0]"),
        ("model.layers.13.mlp.experts.7.down_proj", 13, "output", "mlp.experts.*.down_proj"),
        ("model.layers.3.mlp.down_proj", 3, "input", "mlp.down_proj (input)"),
        ("model.layers.3.self_attn/aten.softmax.default#0", 3, "output", None),
        ("model.embed_tokens", None, "output", None),
    ],
)
def test_module_kind_from_tensor_names(name: str, layer: int | None, role: str, kind: str | None) -> None:
    assert module_kind({"name": name, "layer": layer, "role": role}) == kind


def test_unknown_json_is_a_one_line_input_error(tmp_path: Path) -> None:
    source = tmp_path / "inspect.json"
    source.write_text(json.dumps({"schema_version": 1, "tensors": []}))
    with pytest.raises(InputError) as info:
        render_file(source, tmp_path / "out.html")
    assert str(info.value) == (
        "this JSON is not a precdiff compare, invariance, determinism or tokens report (schema None); pass a "
        "file written by their --json option"
    )
    assert not (tmp_path / "out.html").exists()


def test_write_is_atomic_and_never_over_an_input(tmp_path: Path) -> None:
    source = tmp_path / "tokens.json"
    source.write_text(json.dumps(tokens_document()))
    with pytest.raises(InputError) as info:
        render_file(source, source)
    assert str(info.value) == (
        f"--html {source} would overwrite {source}, an input of this command; pick another path"
    )
    assert json.loads(source.read_text())["schema"] == "precdiff.tokens"

    target = tmp_path / "report.html"
    target.write_text("old report")
    with pytest.raises(InputError):
        write_html({"not": "a report"}, target)
    assert target.read_text() == "old report"  # a failed run leaves the existing output untouched
    assert write_html(tokens_document(), target) == target
    assert target.read_text().startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    missing = tmp_path / "missing" / "r.html"
    with pytest.raises(InputError) as info:
        write_html(tokens_document(), missing)
    assert (
        str(info.value) == f"output folder {missing.parent} does not exist; create it or pick another --html"
    )
