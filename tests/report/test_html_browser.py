"""Each report kind opened in a real headless Chromium: charts drawn, script ran, no request left the page.

Skipped when Chromium is not installed (``.ci/run`` installs it with apt-get). The page is driven over
the DevTools protocol (``cdp_pipe.py``): ``Network.requestWillBeSent`` lists every request the page
made, including any the Content-Security-Policy blocked, so "only the file itself" is a real check;
the negative controls below show it catches a remote image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdp_pipe import Browser, find_chromium
from sample_compare import compare_document
from samples import determinism_document, invariance_document, tokens_document

from precdiff.report.html import render_html

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")

# Evaluated in the page after load: what the charts, tables and script produced.
PROBE = """JSON.stringify({
  ready: document.body.dataset.ready || null,
  jserror: document.body.dataset.jserror || null,
  diffpoints: document.querySelectorAll(".diffpoint").length,
  specials: document.querySelectorAll(".sides .special").length,
  tip: document.getElementById("tip").textContent,
  generation: {
    tokens: Array.from(document.querySelectorAll(".continuations .side")).map(function (side) {
      return side.querySelectorAll(".tok").length; }),
    firstdiff: Array.from(document.querySelectorAll(".continuations .first-diff")).map(function (t) {
      return t.textContent + "|" + t.dataset.tip; }),
    after: document.querySelectorAll(".continuations .after").length,
    specials: document.querySelectorAll(".continuations .special").length,
    badges: Array.from(document.querySelectorAll("#generation .badge")).map(function (b) { return b.textContent; })
  },
  charts: Array.from(document.querySelectorAll("svg.chart")).map(function (svg) {
    return {
      id: svg.id,
      series: Array.from(svg.querySelectorAll("g.series")).map(function (g) {
        return {points: (g.querySelector("path").getAttribute("d").match(/[ML]/g) || []).length,
                values: JSON.parse(g.dataset.values).length};
      }),
      cells: svg.dataset.cells ? +svg.dataset.cells : null,
      subpaths: Array.from(svg.querySelectorAll("path.cells")).reduce(function (n, p) {
        return n + (p.getAttribute("d").match(/M/g) || []).length; }, 0),
      bars: svg.querySelectorAll("rect.bar").length,
      shown: svg.getBoundingClientRect().width > 0
    };
  }),
  tables: Array.from(document.querySelectorAll("div.tbl")).map(function (box) {
    var visible = Array.from(box.querySelectorAll("tbody tr")).filter(function (tr) {
      return tr.offsetParent !== null; });
    return {id: box.id, rows: box.querySelectorAll("tbody tr").length, visible: visible.length,
            first: visible.length ? Array.from(visible[0].cells).map(function (td) { return td.textContent; }) : []};
  })
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    chromium = Browser(CHROMIUM)
    try:
        yield chromium
    finally:
        chromium.close()


def open_report(
    browser: Browser, tmp_path: Path, document: dict[str, Any], extra: str = ""
) -> dict[str, Any]:
    page = tmp_path / "report.html"
    page.write_text(render_html(document), encoding="utf-8")
    result = browser.open(page, f"(function () {{ {extra} return {PROBE}; }})()")
    assert result.remote_requests == []
    assert result.requests == [page.resolve().as_uri()]  # the page itself and nothing else
    assert result.errors == []
    state: dict[str, Any] = json.loads(result.value)
    assert state["ready"] == "1" and state["jserror"] is None
    assert all(chart["shown"] for chart in state["charts"])
    return state


def charts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {chart["id"]: chart for chart in state["charts"]}


def tables(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {table["id"]: table for table in state["tables"]}


def test_compare_page(browser: Browser, tmp_path: Path) -> None:
    state = open_report(browser, tmp_path, compare_document(layers=32, tokens=64))
    drawn = charts(state)
    stages = 34  # embeddings, 32 layers, head
    assert [s["points"] for s in drawn["chart-layers"]["series"]] == [stages] * 3
    assert [s["values"] for s in drawn["chart-layers"]["series"]] == [stages] * 3
    assert drawn["heat-kinds"]["cells"] == drawn["heat-kinds"]["subpaths"] == 32 * 13
    assert drawn["heat-tokens"]["cells"] == drawn["heat-tokens"]["subpaths"] == 32 * 64
    # KL at all 64 positions; the chosen token's |Δlogprob| is unknown at every fifth one (12 gaps).
    assert [s["points"] for s in drawn["chart-logprobs"]["series"]] == [64, 52]
    assert [s["values"] for s in drawn["chart-logprobs"]["series"]] == [64, 64]
    # The generation panel: 16 tokens a side, step 5 highlighted on both, the 10 after it tinted.
    generation = state["generation"]
    assert generation["tokens"] == [16, 16]
    assert generation["firstdiff"] == ["·w5|step 5 · id 305", "·v5|step 5 · id 405"]
    assert generation["after"] == 20 and generation["specials"] == 1  # <|eot_id|> boxed
    assert generation["badges"] == ["differs", "near-tie"]
    # 420 tensor rows in the file, one page of 50 shown by the script.
    shown = tables(state)["table-tensors"]
    assert (shown["rows"], shown["visible"]) == (420, 50)
    assert shown["first"][1] == "model.layers.17"  # largest error first (the sample grows along a layer)


def test_logprobs_hover_shows_the_prompt_tokens(browser: Browser, tmp_path: Path) -> None:
    hover = """
      var svg = document.getElementById("chart-logprobs"), d = svg.dataset;
      var p = svg.createSVGPoint(); p.x = +d.x0 + 7 * +d.dx; p.y = +d.top + 5;
      var at = p.matrixTransform(svg.getScreenCTM());
      svg.dispatchEvent(new MouseEvent("mousemove", {clientX: at.x, clientY: at.y, bubbles: true}));
    """
    state = open_report(browser, tmp_path, compare_document(layers=4, tokens=16), extra=hover)
    # Position 7: its prompt token and the one that came next, then every series' exact value there.
    assert state["tip"].startswith("7 ' the' → 'tok8'KL(A‖B) nats 0.00")
    assert "|Δlogprob| of the chosen token 0.00075390" in state["tip"]


def test_compare_table_sorts_and_filters(browser: Browser, tmp_path: Path) -> None:
    click = """
      var box = document.getElementById("table-tensors");
      var input = box.querySelector(".filter");
      input.value = "down_proj"; input.dispatchEvent(new Event("input"));
      box.querySelectorAll("th")[2].click();  // layer, numbers: largest first
    """
    state = open_report(browser, tmp_path, compare_document(layers=32, tokens=8), extra=click)
    shown = tables(state)["table-tensors"]
    assert shown["visible"] == 32  # one down_proj per layer, all on page 1
    assert shown["first"][1] == "model.layers.31.mlp.down_proj" and shown["first"][2] == "31"


def test_invariance_page(browser: Browser, tmp_path: Path) -> None:
    state = open_report(browser, tmp_path, invariance_document(tensors=60, sizes=(2, 8, 32)))
    ulps = charts(state)["chart-ulps"]["series"]
    assert [s["values"] for s in ulps] == [60, 60, 60]
    assert [s["points"] for s in ulps] == [60, 60, 60]
    assert tables(state)["table-tensors"]["rows"] == 60


def test_invariance_op_level_thousands_of_rows_stay_paged(browser: Browser, tmp_path: Path) -> None:
    state = open_report(browser, tmp_path, invariance_document(tensors=3000, sizes=(2,), level="op"))
    assert [s["points"] for s in charts(state)["chart-ulps"]["series"]] == [3000]
    shown = tables(state)["table-tensors"]
    assert (shown["rows"], shown["visible"]) == (3000, 50)


def test_determinism_page(browser: Browser, tmp_path: Path) -> None:
    state = open_report(browser, tmp_path, determinism_document(completions=3, runs=20))
    assert charts(state)["chart-completions"]["bars"] == 3
    assert tables(state)["table-runs"]["rows"] == 20


def test_tokens_page(browser: Browser, tmp_path: Path) -> None:
    state = open_report(browser, tmp_path, tokens_document())
    assert state["charts"] == []
    assert tables(state)["table-alignment"]["rows"] == 4
    assert state["diffpoints"] == 2  # the first difference marked in both renders
    assert (
        state["specials"] == 5
    )  # <s>, <|user|> and <|assistant|> (marked special by the diff) boxed: 3 in A, 2 in B


def test_the_request_check_catches_a_remote_load(browser: Browser, tmp_path: Path) -> None:
    plain = tmp_path / "plain.html"
    plain.write_text('<html><body><img src="http://example.invalid/pixel.png"></body></html>')
    assert browser.open(plain, "1").remote_requests == ["http://example.invalid/pixel.png"]
    # The same image planted inside a report: the Content-Security-Policy blocks it.
    report = tmp_path / "planted.html"
    report.write_text(
        render_html(tokens_document()).replace("<main>", '<main><img src="http://example.invalid/p.png">')
    )
    result = browser.open(report, "document.body.dataset.ready")
    assert result.value == "1" and result.remote_requests == ["http://example.invalid/p.png"]
    assert any("Content Security Policy" in error for error in result.errors)
