"""The picture report in a real browser (headless Debian Chromium, over the DevTools protocol): every figure is
there and drawn with a real size, and the page requests nothing but itself. Then the `report` asset's page in
the real Dagster UI: its metadata shows the report's path and the key plot as an image that decodes.

Chromium missing is a failure telling how to install it (`apt-get install chromium`), never a skip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from assets.report import report
from pipelines.materialize import materialize_project
from scoring.config import ProjectConfig
from scoring.reporting.page import POOL_FIGURES, STUDENT_FIGURES
from scoring.stages.picture_report import build_picture_report
from tests.browser import Page, chromium_page
from tests.conftest import write_project
from tests.report_data import STUDENT, build_report_root
from tests.ui_server import running_webserver, write_instance_yaml

# Per figure: is it there, how big is its plot as laid out, how many drawn elements and pair rows it holds.
MEASURE_FIGURES = """JSON.stringify([...document.querySelectorAll('figure.plot')].map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {id: f.id, width: box.width, height: box.height,
          drawn: svg ? svg.querySelectorAll('path, line, rect, text, use, polyline').length : 0,
          pairs: f.querySelectorAll('table.pairs tr').length - (f.querySelector('table.pairs') ? 1 : 0),
          caption: (f.querySelector('figcaption') || {}).textContent || '',
          query: (f.querySelector('details pre') || {}).textContent || ''};
}))"""


def _external(requests: list[str], page_url: str) -> list[str]:
    """Every request but the page itself and inline data."""
    return [url for url in requests if url != page_url and not url.startswith("data:")]


def test_the_report_renders_every_figure_and_loads_nothing_external(tmp_path: Path) -> None:
    root = build_report_root(tmp_path / "root")
    summary = build_picture_report(ProjectConfig(student={"id": STUDENT}), root, tmp_path / "report.html")
    url = Path(summary.path).as_uri()
    expected = {f"{STUDENT}-{key}" for key in STUDENT_FIGURES} | {f"pool-{key}" for key in POOL_FIGURES}
    with chromium_page() as page:
        page.navigate(url)
        figures = {f["id"]: f for f in json.loads(page.evaluate(MEASURE_FIGURES))}
        assert set(figures) == expected
        for figure_id, figure in figures.items():
            assert figure["caption"].strip() and "select" in figure["query"], figure_id
            if figure_id == "pool-contamination_pairs":
                assert figure["pairs"] >= 1, figure
                continue
            assert figure["width"] > 300 and figure["height"] > 120, figure  # laid out at a readable size
            assert figure["drawn"] > 30, figure  # axes, ticks, labels and the data's marks
        assert figures["pool-pool_counts"]["pairs"] >= 1
        assert _external(page.requests, url) == [], page.requests
        assert page.console_errors == []

        # The same check catches a page that does fetch something (it is not vacuous).
        leaky = tmp_path / "leaky.html"
        leaky.write_text(
            Path(summary.path)
            .read_text(encoding="utf-8")
            .replace("</main>", '<img src="http://127.0.0.1:9/x.png"></main>'),
            encoding="utf-8",
        )
        page.requests.clear()
        page.navigate(leaky.as_uri())
        assert _external(page.requests, leaky.as_uri()) == ["http://127.0.0.1:9/x.png"]


# The asset page lists the metadata; a long markdown value opens from its "[Show Markdown]" link in a dialog.
UI_TEXT = "document.body.innerText"
OPEN_KEY_PLOT = """(() => {
  const row = [...document.querySelectorAll('tr')]
    .find(r => r.cells.length && r.cells[0].innerText.trim() == 'key_plot');
  const link = row && [...row.querySelectorAll('*')].find(e => e.childElementCount == 0
                                                        && e.textContent.trim() == '[Show Markdown]');
  if (link) link.click();
  return Boolean(link);
})()"""
PNG_SIZES = """JSON.stringify([...document.querySelectorAll('img')]
  .filter(i => i.src.startsWith('data:image/png')).map(i => [i.naturalWidth, i.naturalHeight]))"""


def _poll(page: Page, expression: str, done: Callable[[Any], bool], timeout_s: float = 90) -> Any:
    """Evaluate `expression` until `done(value)` (a React app renders after its GraphQL answers)."""
    deadline = time.monotonic() + timeout_s
    value = page.evaluate(expression)
    while not done(value) and time.monotonic() < deadline:
        time.sleep(1)
        value = page.evaluate(expression)
    return value


def test_the_report_asset_page_in_the_dagster_ui_shows_the_path_and_key_plot(tmp_path: Path) -> None:
    data_root = tmp_path / "root"
    build_report_root(data_root)
    config_path = write_project(tmp_path, data_root, student={"id": STUDENT})
    home = tmp_path / "dagster_home"
    write_instance_yaml(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = materialize_project(config_path, selection=[report], instance=instance)
        assert result.success
        report_path = result.asset_materializations_for_node("report")[0].metadata["path"].value
    assert Path(report_path).is_file()
    with running_webserver(home, config_path) as server, chromium_page(1400, 1800) as page:
        page.navigate(f"{server.url}/assets/report?partition={STUDENT}")
        text = _poll(page, UI_TEXT, lambda t: report_path in t and "key_plot" in t)
        assert report_path in text and "key_plot" in text, text[-3000:]
        assert _poll(page, OPEN_KEY_PLOT, bool, timeout_s=30), "no [Show Markdown] link on the key_plot row"
        sizes = json.loads(_poll(page, PNG_SIZES, lambda v: json.loads(v) != []))
        assert sizes and all(w > 200 and h > 100 for w, h in sizes), sizes  # the PNG decoded at its real size
