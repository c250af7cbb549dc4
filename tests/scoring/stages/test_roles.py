"""`scoring/stages/roles.py`: teacher defaults to the student, generator to the teacher; one engine per distinct
config."""

from __future__ import annotations

from pathlib import Path

from engines import EngineConfig
from scoring.config import ProjectConfig, StudentConfig
from scoring.stages.roles import EngineRoles, role_engine_config
from scoring.storage import DataRoot

STUDENT = EngineConfig(backend="embedded", model="qwen2.5-coder-0.5b-instruct-q4_k_m", n_ctx=512)


def test_defaults_chain_student_teacher_generator() -> None:
    project = ProjectConfig(student=StudentConfig(engine=STUDENT))
    assert role_engine_config(project, "teacher") == STUDENT
    assert role_engine_config(project, "generator") == STUDENT
    teacher = EngineConfig(backend="openai", model="big", base_url="http://127.0.0.1:9")
    project = project.model_copy(update={"teacher": teacher})
    assert role_engine_config(project, "teacher") == teacher
    assert role_engine_config(project, "generator") == teacher  # the generator follows the teacher


def test_roles_with_one_config_share_one_started_engine(tmp_path: Path, small_engine) -> None:
    project = ProjectConfig(student=StudentConfig(engine=STUDENT))
    with EngineRoles(project, DataRoot(tmp_path), overrides={"student": small_engine}) as roles:
        assert roles.student is small_engine
        assert roles.teacher is small_engine  # same config as the student: the started model is reused
        assert roles.generator is small_engine
