"""Screenshot the Gradus asset graph in the Dagster UI with headless Chromium.

Starts the real `dagster-webserver -m pipelines.definitions` on loopback (same helper as
`tests/pipelines/test_ui.py`), opens the global asset graph and writes a PNG, then stops the server.

Usage (from the repo root):

    .venv/bin/python scripts/ui_screenshot.py                       # -> ./asset-graph.png
    .venv/bin/python scripts/ui_screenshot.py --out /tmp/graph.png --config gradus.yaml
    .venv/bin/python scripts/ui_screenshot.py --dagster-home $PWD   # the persistent instance: shows real runs
    .venv/bin/python scripts/ui_screenshot.py --path /runs          # any other UI page
    .venv/bin/python scripts/ui_screenshot.py --report --out report-asset.png   # the `report` asset's page

The project config is `--config`, else `GRADUS_CONFIG`, else `./gradus.yaml`; only its definitions are loaded,
nothing is materialized, except with `--report`: the `report` asset (it reads the data root's tables, starts no
model) is materialized for the configured student first, and its asset page is captured. Without
`--dagster-home` a throw-away instance in a temp dir is used (with the UI's first-visit "Join the Dagster
community" dialog turned off); an instance dir without a `dagster.yaml` gets one written. Needs Debian's Chromium
(`apt-get install chromium`); `--chromium` points at another binary.
Exit code 2 when Chromium or the config is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.ui_server import running_webserver, write_instance_yaml  # noqa: E402

ASSET_GRAPH_PATH = "/asset-groups"
"""The global asset graph ("Global asset lineage", all groups) in the Dagster 1.13 UI."""
GROUPS_QUERY = "query { assetNodes { groupName } }"


def asset_graph_path(groups: list[str]) -> str:
    """The asset graph URL path with these groups expanded (the UI's `expanded` query parameter; a group's id is
    `global@global:<group>` unless the per-code-location groups feature flag is on)."""
    if not groups:
        return ASSET_GRAPH_PATH
    return ASSET_GRAPH_PATH + "?" + urlencode({"expanded": ",".join(f"global@global:{g}" for g in groups)})


def find_chromium(explicit: str | None) -> str | None:
    """The Chromium binary to use: `explicit`, else `chromium` / `chromium-browser` on PATH."""
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(chromium: str, url: str, out: Path, *, window: str, budget_ms: int, timeout_s: float) -> None:
    """Render `url` in headless Chromium (after `budget_ms` of virtual time) and write it to `out`."""
    with tempfile.TemporaryDirectory(prefix="gradus-chromium-") as profile:
        command = [
            "nice",
            chromium,
            "--headless",
            "--no-sandbox",  # needed when running as root, as on the dev machines
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size={window}",
            f"--virtual-time-budget={budget_ms}",
            url,
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium failed (exit {proc.returncode}) for {url}:\n{proc.stderr[-4000:]}")


def materialize_report(home: Path, config: Path) -> str:
    """Materialize the `report` asset for the configured student into the instance at `home`; return the UI path
    of its asset page (that student's partition)."""
    import dagster as dg

    from assets.report import report
    from pipelines.materialize import materialize_project
    from scoring.config import load_config

    if not (home / "dagster.yaml").exists():
        write_instance_yaml(home)
    student = load_config(config).student.id
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = materialize_project(config, selection=[report], instance=instance, raise_on_error=True)
    print(f"materialized report: {result.asset_materializations_for_node('report')[0].metadata['path'].value}")
    return f"/assets/report?partition={student}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("asset-graph.png"), help="PNG to write")
    parser.add_argument(
        "--config", type=Path, default=None, help="project config (default: GRADUS_CONFIG or ./gradus.yaml)"
    )
    parser.add_argument("--dagster-home", type=Path, default=None, help="Dagster instance dir (default: a temp dir)")
    parser.add_argument("--path", default=None, help="UI page to capture (default: the asset graph, groups expanded)")
    parser.add_argument("--collapsed", action="store_true", help="show the asset graph's groups collapsed")
    parser.add_argument(
        "--report", action="store_true", help="materialize the `report` asset, then capture its asset page"
    )
    parser.add_argument("--port", type=int, default=None, help="webserver port (default: a free one)")
    parser.add_argument("--window-size", default="1600,1000", help="browser window WIDTH,HEIGHT")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time for the page to render")
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: chromium on PATH)")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if chromium is None:
        print(
            "Chromium not found: install it with `apt-get install chromium` (or pass --chromium PATH)", file=sys.stderr
        )
        return 2
    config = (args.config or Path(os.environ.get("GRADUS_CONFIG", "gradus.yaml"))).resolve()
    if not config.is_file():
        print(f"project config {config} not found (use --config)", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(prefix="gradus-ui-") as temp:
        home = args.dagster_home.resolve() if args.dagster_home else Path(temp)
        report_page = materialize_report(home, config) if args.report else None
        with running_webserver(home, config, port=args.port) as server:
            if report_page is not None:
                url = server.url + report_page
            elif args.path is not None:
                url = server.url + args.path
            elif args.collapsed:
                url = server.url + ASSET_GRAPH_PATH
            else:
                groups = sorted({node["groupName"] for node in server.graphql(GROUPS_QUERY)["assetNodes"]})
                url = server.url + asset_graph_path(groups)
            print(f"webserver up at {server.url}; capturing {url}")
            screenshot(chromium, url, out, window=args.window_size, budget_ms=args.budget_ms, timeout_s=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
