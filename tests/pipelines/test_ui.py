"""The UI check: the real `dagster-webserver` serves our definitions, and a materialization launched through its
GraphQL API (as the UI's "Materialize" button does) runs, succeeds, and reports the rows it really wrote.

No model call: the project config has one procedural source, and only `problems` is materialized.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from dagster_graphql import DagsterGraphQLClient

from scoring.storage import DataRoot
from tests.conftest import write_project
from tests.ui_server import HOST, LOCATION_NAME, REPOSITORY_NAME, WebServer, running_webserver

RUN_TIMEOUT_S = 180
ASSET_JOB = "__ASSET_JOB"
"""The implicit job holding every asset: what the UI launches when assets are materialized from the graph."""

ASSET_NODES_QUERY = """
query AssetGraph {
  assetNodes { assetKey { path } groupName }
}
"""

RUN_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      jobName
      assetSelection { path }
      eventConnection(limit: 500) {
        events {
          __typename
          ... on MessageEvent { message level stepKey }
          ... on ErrorEvent { error { message stack cause { message stack cause { message stack } } } }
        }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message stack }
  }
}
"""

LATEST_MATERIALIZATION_QUERY = """
query LatestMaterialization($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          __typename
          label
          ... on IntMetadataEntry { intRepr }
          ... on PathMetadataEntry { path }
        }
      }
    }
    ... on AssetNotFoundError { message }
  }
}
"""


def run_errors(run: dict[str, Any]) -> str:
    """The error and failure events in a run's event log, each with its chain of causes (innermost with its
    stack, since that is the user code's exception), for an assertion message."""
    lines = []
    for event in run.get("eventConnection", {}).get("events", []):
        error = event.get("error")
        if not error and event.get("level") not in ("ERROR", "CRITICAL") and "Failure" not in event["__typename"]:
            continue
        lines.append(f"[{event['__typename']}] {event.get('stepKey') or ''} {event.get('message', '')}")
        while error:
            lines.append(f"  {error['message'].strip()}")
            if not error.get("cause"):
                lines.append("".join(error.get("stack") or []))
            error = error.get("cause")
    return "\n".join(lines) or "(no error events)"


def wait_for_run(server: WebServer, run_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll the run over GraphQL until it finishes; return it. Fail with its error events on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = server.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} still {run['status']} after {timeout_s} s\n{run_errors(run)}\n"
                f"--- server log ---\n{server.log_tail()}"
            )
        time.sleep(1)


@pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning")  # inside dagster_graphql's client
def test_webserver_lists_the_assets_and_materializes_problems(tmp_path: Path) -> None:
    data_root = tmp_path / "root"  # one cheap procedural source
    config_path = write_project(
        tmp_path,
        data_root,
        student={"id": "ui-check"},
        sources={"procedural": [{"family": "arithmetic", "levels": [1, 2], "per_level": 2, "seed": 0}]},
    )
    with running_webserver(tmp_path / "dagster_home", config_path) as server:
        # the global asset graph lists our assets in their groups
        nodes = server.graphql(ASSET_NODES_QUERY)["assetNodes"]
        groups = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in nodes}
        expected = {
            "problems": "sources",
            "duplicates": "pool",
            "contamination": "pool",
            "rollouts": "grading",
            "difficulty": "grading",
            "curriculum_shards": "curriculum",
        }
        assert {key: groups.get(key) for key in expected} == expected, groups

        # launch `problems` alone through the public GraphQL client, like the UI's Materialize button
        client = DagsterGraphQLClient(HOST, port_number=server.port)
        run_id = client.submit_job_execution(
            ASSET_JOB,
            repository_location_name=LOCATION_NAME,
            repository_name=REPOSITORY_NAME,
            asset_selection=[["problems"]],
        )
        run = wait_for_run(server, run_id, RUN_TIMEOUT_S)
        assert run["status"] == "SUCCESS", (
            f"run {run_id} ended {run['status']}\n{run_errors(run)}\n--- server log ---\n{server.log_tail()}"
        )
        assert run["jobName"] == ASSET_JOB and run["assetSelection"] == [{"path": ["problems"]}]
        assert client.get_run_status(run_id).value == "SUCCESS"

        # the materialization's row count, read back through the API, is what is on disk
        asset = server.graphql(LATEST_MATERIALIZATION_QUERY, {"path": ["problems"]})["assetOrError"]
        assert asset["__typename"] == "Asset", asset
        [materialization] = asset["assetMaterializations"]
        assert materialization["runId"] == run_id
        metadata = {entry["label"]: entry for entry in materialization["metadataEntries"]}
        assert metadata["dagster/row_count"]["__typename"] == "IntMetadataEntry", metadata
        row_count = int(metadata["dagster/row_count"]["intRepr"])

    table = DataRoot(data_root).read_table("problems")
    assert row_count == table.num_rows == 4, (row_count, table.num_rows)  # 2 knob settings x 2 per setting
    assert set(table.column("family").to_pylist()) == {"arithmetic"}
    assert Path(metadata["path"]["path"]).resolve().is_relative_to(data_root.resolve())
