"""The DuckDB catalog of a data root (`<root>/catalog.duckdb`): one view per stored table, `shards` over all
curriculum shards, and the views derived from them (verifier disagreements, students compared, difficulty
changes between revisions, supervision policies compared). Refreshed at the end of each run; the Parquet files
stay the data.
"""

from __future__ import annotations

import time

import duckdb

from scoring.delta_tables import parquet_list
from scoring.schemas import TABLES
from scoring.storage import DataRoot


def connect_catalog(root: DataRoot, *, read_only: bool = True, attempts: int = 10) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB catalog of `root`. DuckDB lets one process write a file and nobody else open it
    meanwhile, so while another process (a concurrent run refreshing its views, a user's DuckDB shell) holds
    it, this waits and retries with a growing pause (about 25 s in all) before raising."""
    for attempt in range(attempts):
        try:
            return duckdb.connect(str(root.catalog_path), read_only=read_only)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.25 * (attempt + 1), 5.0))
    raise AssertionError("unreachable: the last attempt returns or raises")


def refresh_catalog(root: DataRoot) -> list[str]:
    """(Re)create one DuckDB view per stored table, plus `shards` over all curriculum shards. Runs end here,
    so this is also where temporaries of killed earlier runs in directories not written this run go."""
    root.sweep_temps()
    with connect_catalog(root, read_only=False) as con:
        return define_views(con, root)


def memory_catalog(root: DataRoot) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """An in-memory DuckDB connection with the catalog's views over the current files of `root`, and their names:
    the same SQL as `catalog.duckdb` answers, without waiting for (or going stale behind) the catalog file."""
    con = duckdb.connect()
    return con, define_views(con, root)


def define_views(con: duckdb.DuckDBPyConnection, root: DataRoot) -> list[str]:
    """Create (or replace) the catalog's views on `con`: one per stored table, the derived views and `shards`;
    return their names. A table never written has no view (its view is dropped)."""
    views = []
    for table in TABLES:
        # The view lists the table's current files: a stock DuckDB reads them with no Delta extension (none
        # can be downloaded offline). Files stay until vacuumed, so the view stays valid between refreshes.
        files = root.table_files(table)
        if not files:
            if root.has_table(table):  # written, but every row was replaced away: an empty view of its columns
                con.execute(f"create or replace view {table} as {_empty_select(table, root)}")
                views.append(table)
            else:
                con.execute(f"drop view if exists {table}")
            continue
        con.execute(
            f"create or replace view {table} as select * from read_parquet("
            f"{parquet_list(files)}, hive_partitioning = true, union_by_name = true)"
        )
        views.append(table)
    if "verdict_audit" in views:
        con.execute(DISAGREEMENTS_VIEW)
        views.append("disagreements")
    if {"difficulty", "problems"} <= set(views):
        con.execute(STUDENT_COMPARISON_VIEW)
        views.append("student_comparison")
    if {"difficulty", "problems", "student_revisions"} <= set(views):
        con.execute(DIFFICULTY_DIFF_VIEW)
        con.execute(DIFFICULTY_DIFF_FAMILY_VIEW)
        views += ["difficulty_diff", "difficulty_diff_family"]
    if {"supervision_selection", "supervision_traces"} <= set(views):
        con.execute(SUPERVISION_POLICIES_VIEW)
        views.append("supervision_policies")
    if any(root.shards_dir.glob("*/*/shard-*.parquet")):
        glob = (root.shards_dir / "*" / "*" / "shard-*.parquet").as_posix()
        con.execute(
            "create or replace view shards as select * from read_parquet("
            f"'{_sql_str(glob)}', filename = true, union_by_name = true)"
        )
        views.append("shards")
    return views


DISAGREEMENTS_VIEW = """
create or replace view disagreements as
select problem_id, student_id, student_revision, sampling_hash, sample_index,
       any_value(extracted_answer) as extracted_answer,
       map_from_entries(list({'k': rule, 'v': verdict} order by rule)) as verdicts,
       list(rule || ': ' || reason order by rule) as reasons
from verdict_audit
group by all
having count(distinct verdict) > 1
"""


# Each student revision against the one graded before it (same student, sampling config and verifier):
# the input to scheduled regeneration, and what a user reads to see what a new checkpoint changed.
DIFFICULTY_DIFF_VIEW = """
create or replace view difficulty_diff as
with revisions as (
    select student_id, student_revision, first_graded_at,
           lag(student_revision) over (
               partition by student_id order by first_graded_at, student_revision
           ) as previous_revision
    from student_revisions
)
select cur.problem_id, coalesce(cur.family, p.family) as family, cur.student_id,
       r.previous_revision as before_revision, cur.student_revision as after_revision,
       prev.n as n_before, cur.n as n_after,
       prev.pass_rate as pass_rate_before, cur.pass_rate as pass_rate_after,
       cur.pass_rate - prev.pass_rate as delta,
       prev.band as band_before, cur.band as band_after, prev.band <> cur.band as moved_band,
       cur.sampling_hash, cur.verifier_version
from difficulty cur
join revisions r on r.student_id = cur.student_id and r.student_revision = cur.student_revision
join difficulty prev on prev.problem_id = cur.problem_id and prev.student_id = cur.student_id
     and prev.student_revision = r.previous_revision and prev.sampling_hash = cur.sampling_hash
     and prev.verifier_version = cur.verifier_version
left join problems p on p.problem_id = cur.problem_id
where cur.n > 0 and prev.n > 0
"""

DIFFICULTY_DIFF_FAMILY_VIEW = """
create or replace view difficulty_diff_family as
select student_id, before_revision, after_revision, family,
       count(*) as problems,
       avg(pass_rate_before) as pass_rate_before, avg(pass_rate_after) as pass_rate_after,
       avg(delta) as mean_delta,
       count(*) filter (where moved_band) as moved_band,
       count(*) filter (where band_after = 'learnable' and band_before <> 'learnable') as became_learnable,
       count(*) filter (where band_after = 'too_easy' and band_before <> 'too_easy') as became_too_easy
from difficulty_diff
group by all
order by student_id, after_revision, family
"""

# Every student (and revision) on every problem it was graded on, against the problem's mean over students.
STUDENT_COMPARISON_VIEW = """
create or replace view student_comparison as
select d.problem_id, coalesce(d.family, p.family) as family, d.student_id, d.student_revision, d.method,
       d.n, d.k, d.pass_rate, d.band,
       d.pass_rate - avg(d.pass_rate) over (partition by d.problem_id, d.sampling_hash, d.verifier_version)
           as vs_mean_of_students,
       count(*) over (partition by d.problem_id, d.sampling_hash, d.verifier_version) as students_graded
from difficulty d
left join problems p on p.problem_id = d.problem_id
where d.n > 0
"""


# Each supervision policy's selection in numbers: what it kept, and the kept traces' correctness, step-wise error
# rate, difficulty for the student and length (methods §14: which traces help is what the policies differ in).
SUPERVISION_POLICIES_VIEW = """
create or replace view supervision_policies as
select s.student_id, s.policy,
       count(*) filter (where s.kept) as kept,
       count(*) filter (where not s.kept) as dropped,
       count(distinct s.problem_id) filter (where s.kept) as problems,
       avg(case when s.verdict = 'correct' then 1.0 else 0.0 end) filter (where s.kept) as correct_share,
       avg(s.step_error_rate) filter (where s.kept) as mean_step_error_rate,
       avg(s.pass_rate) filter (where s.kept) as mean_pass_rate,
       avg(t.trace_chars) filter (where s.kept) as mean_trace_chars
from supervision_selection s
left join supervision_traces t
       on t.student_id = s.student_id and t.problem_id = s.problem_id and t.role = s.role
      and t.model_id = s.model_id and t.sample_index = s.sample_index
group by all
order by s.student_id, s.policy
"""


def _empty_select(table: str, root: DataRoot) -> str:
    empty = duckdb.from_arrow(TABLES[table].empty_table())
    columns = [f'cast(null as {kind}) as "{name}"' for name, kind in zip(empty.columns, empty.types, strict=True)]
    columns += [f'cast(null as varchar) as "{key}"' for key in root.partition_keys(table)]
    return f"select {', '.join(columns)} where false"


def _sql_str(value: str) -> str:
    return value.replace("'", "''")
