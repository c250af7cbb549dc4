"""Resource instances built from `gradus.yaml`: the one place where config and environment meet Dagster."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from assets.resources import (
    CatalogResource,
    DataRootResource,
    EngineResource,
    GeneratorEngineResource,
    ProjectResource,
    StudentEngineResource,
    TeacherEngineResource,
)
from scoring.config import load_config, resolve_data_root
from scoring.stages.roles import role_engine_config

CONFIG_ENV = "GRADUS_CONFIG"
API_KEY_ENV = "GRADUS_STUDENT_API_KEY"
TEACHER_KEY_ENV = "GRADUS_TEACHER_API_KEY"
GENERATOR_KEY_ENV = "GRADUS_GENERATOR_API_KEY"


def default_config_path() -> Path:
    """`GRADUS_CONFIG` if set, else `gradus.yaml` in the working directory."""
    return Path(os.environ.get(CONFIG_ENV, "gradus.yaml")).resolve()


def _api_key(env: str, configured: str | None) -> str | dg.EnvVar | None:
    # Secrets come from the environment through EnvVar, so they never show in the launchpad or run config.
    return dg.EnvVar(env) if os.environ.get(env) else configured


def build_resources(config_path: str | Path, data_root: str | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources for every asset, with values from the config file (overridable in the launchpad): the
    project, the data root, the catalog, and one engine per role (student, teacher, generator)."""
    config = load_config(config_path)
    root = DataRootResource(path=str(resolve_data_root(config, data_root).path))
    student = config.student.engine
    teacher = role_engine_config(config, "teacher")
    generator = role_engine_config(config, "generator")
    return {
        "project": ProjectResource(config_path=str(Path(config_path).resolve())),
        "data_root": root,
        "student": StudentEngineResource(
            student_id=config.student.id,
            **(EngineResource.fields_of(student) | {"api_key": _api_key(API_KEY_ENV, student.api_key)}),
        ),
        "teacher": TeacherEngineResource(
            **(EngineResource.fields_of(teacher) | {"api_key": _api_key(TEACHER_KEY_ENV, teacher.api_key)})
        ),
        "generator": GeneratorEngineResource(
            **(EngineResource.fields_of(generator) | {"api_key": _api_key(GENERATOR_KEY_ENV, generator.api_key)})
        ),
        "catalog": CatalogResource(data_root=root),
    }
