"""The chaining sensor: a successful synthesize_more run for a student launches build_all for that student."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.materialize import add_student

CONFIG = """
data_root: {root}
student: {{id: chained, engine: {{backend: embedded, model: qwen2.5-coder-0.5b-instruct-q4_k_m}}}}
sources: {{procedural: [{{family: arithmetic, levels: [1], per_level: 1}}]}}
"""


def test_synthesize_more_success_requests_build_all_for_the_student(tmp_path: Path) -> None:
    config = tmp_path / "gradus.yaml"
    config.write_text(CONFIG.format(root=tmp_path / "root"))
    defs = build_definitions(config)
    with dg.instance_for_test() as instance:
        add_student(instance, "chained")
        # Methods are off in this config, so the job runs for real without starting a model.
        result = defs.resolve_job_def("synthesize_more").execute_in_process(
            instance=instance, partition_key="chained", resources=defs.resources
        )
        assert result.success
        sensor = defs.resolve_sensor_def("grade_new_problems")
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_success_event(),
        )
        request = sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "chained"
        assert request.run_key == f"after-{result.run_id}"
        assert request.tags["gradus/after"] == result.run_id
        metadata = result.asset_materializations_for_node("restructured_problems")[0].metadata
        assert metadata["enabled"].value is False
