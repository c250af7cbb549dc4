"""The three engine roles of design.md — `student`, `teacher`, `generator` — resolved from the project config.

`teacher` defaults to the student's engine and `generator` to the teacher's, so the embedded default runs every
method with one model. Roles with the same engine config share one started engine (one model in memory), and all
share the persistent completion cache under the data root (keys include the model, so roles never collide).
"""

from __future__ import annotations

from typing import Literal

from engines import Engine, EngineConfig, build_engine
from scoring.config import ProjectConfig
from scoring.storage import DataRoot

RoleName = Literal["student", "teacher", "generator"]
ROLES: tuple[RoleName, ...] = ("student", "teacher", "generator")


def role_engine_config(project: ProjectConfig, role: RoleName) -> EngineConfig:
    """The engine config that answers for `role`, after defaults (teacher → student, generator → teacher)."""
    if role == "student":
        return project.student.engine
    if role == "teacher":
        return project.teacher or project.student.engine
    if role == "generator":
        return project.generator or role_engine_config(project, "teacher")
    raise ValueError(f"unknown engine role {role!r}; roles are {', '.join(ROLES)}")


class EngineRoles:
    """Engines started on first use, one per distinct config; `close()` (or `with`) stops them all."""

    def __init__(self, project: ProjectConfig, root: DataRoot, overrides: dict[str, Engine] | None = None) -> None:
        self.project = project
        self.root = root
        self._overrides = dict(overrides or {})  # role → an already started engine (e.g. a Dagster resource's)
        self._started: dict[EngineConfig, Engine] = {}

    def get(self, role: RoleName) -> Engine:
        if role in self._overrides:
            return self._overrides[role]
        config = role_engine_config(self.project, role)
        if config == self.project.student.engine and "student" in self._overrides:
            return self._overrides["student"]
        if config not in self._started:
            self._started[config] = build_engine(config, self.root.models_dir, self.root.cache_path)
        return self._started[config]

    @property
    def student(self) -> Engine:
        return self.get("student")

    @property
    def teacher(self) -> Engine:
        return self.get("teacher")

    @property
    def generator(self) -> Engine:
        return self.get("generator")

    def close(self) -> None:
        for engine in self._started.values():
            engine.close()
        self._started.clear()

    def __enter__(self) -> EngineRoles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
