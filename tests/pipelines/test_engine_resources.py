"""The Dagster engine resources carry every `EngineConfig` field: a field missing there would be dropped silently
between `gradus.yaml` and the engine a run launched from the UI builds."""

from assets.resources import GeneratorEngineResource, StudentEngineResource, TeacherEngineResource
from engines.config import EngineConfig


def test_every_engine_config_field_is_a_resource_field() -> None:
    for resource in (StudentEngineResource, TeacherEngineResource, GeneratorEngineResource):
        missing = set(EngineConfig.model_fields) - set(resource.model_fields)
        assert not missing, f"{resource.__name__} drops {sorted(missing)}"


def test_engine_config_round_trips_through_the_resource() -> None:
    config = EngineConfig(
        backend="vllm",
        model="/models/qwen-0.5b-hf",
        tensor_parallel_size=2,
        max_model_len=512,
        dtype="float32",
        gpu_memory_utilization=0.25,
        max_num_batched_tokens=256,
        enforce_eager=True,
    )
    resource = StudentEngineResource(student_id="s", **StudentEngineResource.fields_of(config))
    assert resource.engine_config() == config
    served = EngineConfig(backend="openai", model="served", base_url="http://127.0.0.1:9", server_n=False)
    assert TeacherEngineResource(**TeacherEngineResource.fields_of(served)).engine_config() == served
