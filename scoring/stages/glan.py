"""GLAN as three stages (methods §9; Li et al., arXiv 2402.13064), each level its own table and Dagster asset:

    build_glan_taxonomy  → glan_disciplines, glan_subjects   (the teacher lists subjects per discipline)
    build_glan_syllabus  → glan_syllabus                      (reads glan_subjects from the table)
    build_glan_problems  → synthesized_problems (method glan) (reads glan_syllabus from the table)

Each stage reads the level above from its table, so a person can edit `glan_subjects` or `glan_syllabus` (drop a
row, rewrite a concept) and then materialize only the levels below; rerunning a stage rewrites its own table from
its inputs (and so replaces edits made to that table). Every reply and every decision is a `synthesis_log` row:
the first two levels log under the methods `glan_taxonomy` and `glan_syllabus` (so that each stage rewrites only
its own log partition), the problems under `glan`. All calls go to the teacher and are cached, so a rerun with
the same config, tables and seed makes zero model calls. This module holds levels 1 and 2 and the teacher's list
calls they share; level 3 is `scoring.stages.glan_problems`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engines import ChatRequest, Completion, Engine, Message, SamplingParams
from scoring.config import ProjectConfig
from scoring.schemas import to_table
from scoring.stages.report import PREVIEW_ROWS, CostMeter, StageSummary, markdown_table, synthesis_markdown
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
from scoring.storage import DataRoot
from scoring.synthesis_schemas import GLAN_DISCIPLINES, GLAN_SUBJECTS, GLAN_SYLLABUS, SYNTHESIS_LOG
from synthesis import glan
from synthesis.glan import GlanConfig, Parsed, derive_seed
from synthesis.prompting import prompt_version
from synthesis.structured import ParseError
from synthesis.taxonomies import Discipline, load_taxonomy, taxonomy_path

Row = dict[str, object]


# ---- teacher calls and their log rows ------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    """One teacher reply to a list prompt, after parsing (and, when needed, the conversion call)."""

    item_id: str
    text: str
    parsed: Parsed | None
    reason: str  # how it parsed ("json", "salvaged", "converted") or why it did not
    prompt_tokens: int
    completion_tokens: int
    version: str
    converted: str = ""  # the conversion call's JSON, when one was made


def request(prompt: str, *, temperature: float, top_p: float, max_tokens: int, seed: int, n: int = 1) -> ChatRequest:
    """A one-turn user prompt with its sampling (GLAN's calls all have this shape)."""
    sampling = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, n=n, seed=seed)
    return ChatRequest((Message("user", prompt),), sampling)


def _parse_reply(reply: Reply, c: Completion, parse: Callable[[str], Parsed]) -> bool:
    """Fill `reply` from `c`; True when it parsed."""
    try:
        if not c.ok:
            raise ParseError(f"engine error: {c.error}")
        reply.parsed = parse(c.text)
        reply.reason = reply.parsed.how
        return True
    except ParseError as exc:
        reply.reason = exc.reason
        return False


def _ask_lists(
    engine: Engine,
    jobs: Sequence[tuple[str, str, int]],
    parse: Callable[[str], Parsed],
    format_example: str,
    template: str,
    cfg: GlanConfig,
    *,
    n: int = 1,
    progress: bool,
) -> list[list[Reply]]:
    """`n` replies per `(item_id, prompt, seed)` job (T `temperature`, top-p `top_p`), parsed. A reply that does
    not parse gets the paper's second "convert to JSON" call (greedy) when `json_repair` is on. Never raises on
    model output: what does not parse is a `Reply` with `parsed=None` and the reason."""
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.list_max_tokens, "n": n}
    groups = engine.generate([request(p, seed=s, **sampling) for _, p, s in jobs], progress=progress, desc=template)
    replies: list[list[Reply]] = []
    retry: list[tuple[Reply, int]] = []
    for (item_id, _, seed), group in zip(jobs, groups, strict=True):
        replies.append([])
        for c in group:
            reply = Reply(f"{item_id}#{c.sample_index}", c.text, None, "", c.prompt_tokens, c.completion_tokens, "")
            reply.version = prompt_version(template)
            if not _parse_reply(reply, c, parse) and cfg.json_repair and c.ok and c.text.strip():
                retry.append((reply, derive_seed(seed, "to_json", c.sample_index)))
            replies[-1].append(reply)
    convert = {"temperature": 0.0, "top_p": 1.0, "max_tokens": cfg.list_max_tokens}
    requests = [request(glan.to_json_prompt(r.text, format_example), seed=s, **convert) for r, s in retry]
    converted = engine.generate(requests, progress=progress, desc=f"{template} to JSON") if requests else []
    for (reply, _), (c,) in zip(retry, converted, strict=True):
        first = reply.reason
        reply.prompt_tokens += c.prompt_tokens
        reply.completion_tokens += c.completion_tokens
        reply.version += "+" + prompt_version("glan_to_json")
        reply.converted = c.text
        if _parse_reply(reply, c, parse):
            reply.reason = "converted"
        else:
            reply.reason = f"{first}; conversion call: {reply.reason}"
    return replies


def _log_reply(record: SynthesisRecord, stage: str, reply: Reply, model: str, **detail: object) -> None:
    parsed = reply.parsed
    if parsed is not None:
        detail |= {"entries": len(parsed.items), "skipped": parsed.skipped[:10]}
    if reply.converted:
        detail["converted"] = reply.converted[:2000]
    record.decide(
        stage,
        reply.item_id,
        kept=parsed is not None,
        reason=reply.reason,
        text=reply.text,
        model=model,
        prompt_version=reply.version,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        detail=detail,
    )


def _write_log(record: SynthesisRecord, root: DataRoot) -> None:
    """Only the log partition: the taxonomy and syllabus levels accept no problems of their own."""
    root.write_table("synthesis_log", to_table(record.log, SYNTHESIS_LOG), synth_partition(record.method))


# ---- level 1: taxonomy and subjects ------------------------------------------------------------------------------


def _teacher_disciplines(cfg: GlanConfig, engine: Engine, record: SynthesisRecord, progress: bool) -> list[Discipline]:
    """`taxonomy: teacher`: the teacher decomposes each of `teacher_fields` into sub-fields and disciplines."""
    count = max(3, -(-cfg.disciplines // len(cfg.teacher_fields)))  # sub-fields to ask for, per field
    jobs = [(f, glan.disciplines_prompt(f, count), derive_seed(cfg.seed, "fields", f)) for f in cfg.teacher_fields]
    replies = _ask_lists(
        engine, jobs, glan.parse_disciplines, glan.DISCIPLINES_FORMAT, "glan_disciplines", cfg, progress=progress
    )
    found: dict[str, Discipline] = {}
    for field_name, (reply,) in zip(cfg.teacher_fields, replies, strict=True):
        _log_reply(record, "disciplines", reply, engine.model_id, field=field_name)
        for sub_field, name in reply.parsed.items if reply.parsed else []:
            found.setdefault(name.casefold(), Discipline(field_name, sub_field, name))
    return list(found.values())


def _choose_disciplines(
    config: ProjectConfig, engine: Engine, record: SynthesisRecord, progress: bool
) -> tuple[list[Discipline], list[Discipline], str]:
    """(available, chosen, source): the taxonomy's disciplines and the seeded sample of them, each logged."""
    cfg = config.synthesis.glan
    if cfg.taxonomy == glan.TEACHER_TAXONOMY:
        available, source = _teacher_disciplines(cfg, engine, record, progress), f"teacher:{engine.model_id}"
    else:
        path = taxonomy_path(cfg.taxonomy, Path(config.base_dir))
        available, source = load_taxonomy(path), f"taxonomy:{path.name}"
    chosen = glan.select_disciplines(available, cfg.disciplines, cfg.seed)
    for d in available:
        picked = d in chosen
        reason = "sampled" if picked else f"not sampled (disciplines: {cfg.disciplines})"
        detail = {"field": d.field, "sub_field": d.sub_field, "source": source}
        record.decide("taxonomy", d.discipline, kept=picked, reason=reason, detail=detail)
    return available, chosen, source


def _subject_rows(
    cfg: GlanConfig, chosen: list[Discipline], replies: list[list[Reply]], record: SynthesisRecord, model: str
) -> list[Row]:
    """The first `subjects_per_discipline` distinct subjects of each discipline's replies; every listed subject
    is a log row (kept, a duplicate, or over the cap)."""
    rows: list[Row] = []
    for d, group in zip(chosen, replies, strict=True):
        kept: set[str] = set()
        for reply in group:
            _log_reply(record, "subjects", reply, model, discipline=d.discipline)
            for subject in reply.parsed.items if reply.parsed else []:
                ok, reason = True, "listed"
                if subject.name.casefold() in kept:
                    ok, reason = False, "duplicate of a subject already listed"
                elif len(kept) >= cfg.subjects_per_discipline:
                    ok, reason = False, f"over subjects_per_discipline ({cfg.subjects_per_discipline})"
                item_id = f"{d.discipline}/{subject.name}"
                record.decide("subject", item_id, kept=ok, reason=reason, parent_id=reply.item_id, model=model)
                if ok:
                    kept.add(subject.name.casefold())
                    rows.append(
                        {
                            "discipline": d.discipline,
                            "subject": subject.name,
                            "level": subject.level,
                            "subtopics": list(subject.subtopics),
                            "source": f"teacher:{model}",
                        }
                    )
    return rows


def build_glan_taxonomy(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """GLAN §2.1–2.2: choose disciplines (a seeded sample of the taxonomy file's, or of the teacher's own
    decomposition with `taxonomy: teacher`), then the teacher, as an education expert of each discipline, lists
    subjects with a level and subtopics (T 1.0, top-p 0.95, `subject_calls` seeded samples per discipline).
    Writes `glan_disciplines` and `glan_subjects`; the main table is `glan_subjects`."""
    cfg, engine = config.synthesis.glan, roles.teacher
    meter, record = CostMeter(engine), SynthesisRecord("glan_taxonomy")
    available, chosen, source = _choose_disciplines(config, engine, record, progress)
    rows = [{"field": d.field, "sub_field": d.sub_field, "discipline": d.discipline, "source": source} for d in chosen]
    root.write_table("glan_disciplines", to_table(rows, GLAN_DISCIPLINES))
    jobs = [
        (
            d.discipline,
            glan.subjects_prompt(d.discipline, cfg.subjects_per_discipline),
            derive_seed(cfg.seed, "subjects", d.discipline),
        )
        for d in chosen
    ]
    replies = _ask_lists(
        engine,
        jobs,
        glan.parse_subjects,
        glan.SUBJECTS_FORMAT,
        "glan_subjects",
        cfg,
        n=cfg.subject_calls,
        progress=progress,
    )
    subject_rows = _subject_rows(cfg, chosen, replies, record, engine.model_id)
    subjects = to_table(subject_rows, GLAN_SUBJECTS)
    path = root.write_table("glan_subjects", subjects)
    _write_log(record, root)
    flat = [r for group in replies for r in group]
    counts = {
        "disciplines_available": len(available),
        "disciplines": len(chosen),
        "subject_replies": len(flat),
        "subject_replies_parsed": sum(r.parsed is not None for r in flat),
        "subjects": subjects.num_rows,
    }
    preview = markdown_table(subject_rows[:PREVIEW_ROWS], ("discipline", "subject", "level", "subtopics"))
    return StageSummary(subjects, counts, meter.figures(), path, markdown=synthesis_markdown(record, preview))


# ---- level 2: syllabus ---------------------------------------------------------------------------------------------


def _session_rows(cfg: GlanConfig, subject: Row, reply: Reply, record: SynthesisRecord, model: str) -> list[Row]:
    """The first `sessions_per_subject` sessions of a syllabus reply, each with at most `concepts_per_session`
    key concepts; every session is a log row."""
    rows: list[Row] = []
    for position, session in enumerate(reply.parsed.items if reply.parsed else []):
        ok = position < cfg.sessions_per_subject
        concepts = list(session.key_concepts[: cfg.concepts_per_session])
        record.decide(
            "session",
            f"{reply.item_id}/{position + 1}",
            kept=ok,
            reason="listed" if ok else f"over sessions_per_subject ({cfg.sessions_per_subject})",
            text=f"{session.title}: " + "; ".join(session.key_concepts),
            parent_id=reply.item_id,
            model=model,
            detail={"concepts_dropped": len(session.key_concepts) - len(concepts)},
        )
        if ok:
            rows.append(
                {
                    "discipline": subject["discipline"],
                    "subject": subject["subject"],
                    "level": subject["level"],
                    "session_idx": position + 1,
                    "session_title": session.title,
                    "key_concepts": concepts,
                    "source": f"teacher:{model}",
                }
            )
    return rows


def build_glan_syllabus(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """GLAN §2.3: one teacher call per subject of the `glan_subjects` TABLE (so edits there count) → class
    sessions with their key concepts (T 1.0, top-p 0.95). Writes `glan_syllabus`, one row per session."""
    cfg, engine = config.synthesis.glan, roles.teacher
    meter, record = CostMeter(engine), SynthesisRecord("glan_syllabus")
    subjects = root.read_table("glan_subjects").to_pylist()
    jobs = []
    for s in subjects:
        level, subtopics = s["level"] or "unspecified", s["subtopics"] or []
        prompt = glan.syllabus_prompt(
            s["discipline"], s["subject"], level, subtopics, cfg.sessions_per_subject, cfg.concepts_per_session
        )
        jobs.append(
            (
                f"{s['discipline']}/{s['subject']}",
                prompt,
                derive_seed(cfg.seed, "syllabus", s["discipline"], s["subject"]),
            )
        )
    replies = _ask_lists(
        engine, jobs, glan.parse_syllabus, glan.SYLLABUS_FORMAT, "glan_syllabus", cfg, progress=progress
    )
    rows: list[Row] = []
    for subject, (reply,) in zip(subjects, replies, strict=True):
        _log_reply(record, "syllabus", reply, engine.model_id, discipline=subject["discipline"])
        rows += _session_rows(cfg, subject, reply, record, engine.model_id)
    syllabus = to_table(rows, GLAN_SYLLABUS)
    path = root.write_table("glan_syllabus", syllabus)
    _write_log(record, root)
    counts = {
        "subjects": len(subjects),
        "syllabi_parsed": sum(r.parsed is not None for (r,) in replies),
        "sessions": syllabus.num_rows,
        "key_concepts": sum(len(r["key_concepts"]) for r in rows),
    }
    preview = markdown_table(rows[:PREVIEW_ROWS], ("subject", "session_idx", "session_title", "key_concepts"))
    return StageSummary(syllabus, counts, meter.figures(), path, markdown=synthesis_markdown(record, preview))
