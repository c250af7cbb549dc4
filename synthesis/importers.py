"""Import existing datasets with a field mapping, read through Hugging Face `datasets` (GSM8K and MATH presets).

Files are loaded by extension — `.jsonl`/`.json` with the `json` builder, `.parquet`, `.csv` (every column read as
text, so a gold answer like `042` keeps its zero) — and a directory written by `Dataset.save_to_disk` with
`load_from_disk`. Nothing goes to the network (offline mode is on while loading) and nothing is cached in the
user's home: builders write to a temporary directory and keep the table in memory.

A mapped column missing from the whole dataset is a `ConfigError` naming the file, the field and the columns
that do exist. A row whose value is null, empty or has no extractable answer becomes a `Reject` naming
`file:row` (rows count from 1; for JSONL the number is the line). A JSONL file that `datasets` cannot read
(a malformed line, a blank line, a line that is not an object) is read line by line instead, so each bad line
becomes a `Reject` and the rest of the file proceeds.

`where` keeps only rows whose column holds one of the listed values (`{"difficulty": [1, 2]}`: MATH levels 1-2);
other rows are skipped, not rejected, and do not count toward `limit`. Its columns must exist, like mapped ones.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.errors import ConfigError, did_you_mean
from synthesis.import_mapping import OPTIONAL_ROLES, PRESETS, FieldMapping, map_row, mapping_for
from synthesis.problem import Problem, Reject, SourceResult

if TYPE_CHECKING:
    from types import ModuleType

    from datasets import Dataset

__all__ = ["PRESETS", "FieldMapping", "import_dataset", "mapping_for"]  # the mapping lives in import_mapping

log = logging.getLogger(__name__)

_MAX_LINE_BYTES = 1_000_000  # a larger JSONL line is rejected, not parsed
_BATCH_ROWS = 1_000
BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
RowFilter = Mapping[str, Sequence[Any]]  # column -> the values a kept row may hold there


def import_dataset(
    path: Path, *, source: str, mapping: FieldMapping, limit: int | None = None, where: RowFilter | None = None
) -> SourceResult:
    """Read problems from a JSONL/JSON/Parquet/CSV file or a saved dataset directory; stop after `limit`
    problems (rejects don't count toward it). With `where`, only rows matching it are read."""
    path = Path(path)
    where = dict(where or {})
    if path.is_dir():
        return _import_rows(_load_saved(path), path, source, mapping, limit, refs=None, where=where)
    if not path.is_file():
        raise ConfigError(f"import file {str(path)!r} does not exist")
    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ConfigError(
            f"import file {str(path)!r} has an unknown extension {path.suffix!r}; expected one of "
            f"{', '.join(BUILDERS)} or a directory written by Dataset.save_to_disk"
        )
    if path.suffix.lower() == ".jsonl":
        return _import_jsonl_file(path, source, mapping, limit, where)
    try:
        dataset = _load_file(builder, path)
    except ConfigError:
        raise
    except _load_errors() as exc:
        raise ConfigError(f"could not read {str(path)!r} as {builder}: {_describe(exc)}") from exc
    return _import_rows(dataset, path, source, mapping, limit, refs=None, where=where)


# --- loading through `datasets` -------------------------------------------------------------------------------


@contextmanager
def _offline_datasets() -> Iterator[ModuleType]:
    """The `datasets` module with offline mode on and progress bars off, both restored afterwards."""
    import datasets  # imported here: it takes seconds and only imports need it

    offline = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE)
    bars_were_off = datasets.utils.are_progress_bars_disabled()
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    datasets.utils.disable_progress_bars()
    try:
        yield datasets
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = offline
        if not bars_were_off:
            datasets.utils.enable_progress_bars()


def _load_errors() -> tuple[type[BaseException], ...]:
    """What `datasets` raises for a file it cannot parse (it varies by builder and by the kind of damage)."""
    from datasets.exceptions import DatasetGenerationError
    from pyarrow import ArrowException

    return (DatasetGenerationError, ArrowException, ValueError, StopIteration)


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} ({type(cause).__name__}: {cause})" if cause is not None else text


def _load_file(builder: str, path: Path) -> Dataset:
    with _offline_datasets() as datasets, tempfile.TemporaryDirectory(prefix="gradus-import-") as cache_dir:
        options: dict[str, Any] = {}
        if builder == "csv":
            options["features"] = datasets.Features({c: datasets.Value("string") for c in _csv_header(path)})
        return datasets.load_dataset(
            builder, data_files=str(path), split="train", cache_dir=cache_dir, keep_in_memory=True, **options
        )


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise ConfigError(f"CSV file {str(path)!r} has no header row")
    return header


def _load_saved(path: Path) -> Dataset:
    with _offline_datasets() as datasets:
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise ConfigError(f"{str(path)!r} is a directory but not one written by save_to_disk: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise ConfigError(
                f"{str(path)!r} holds the splits {sorted(loaded)}; point the import at one split's directory, "
                f"e.g. {str(path / sorted(loaded)[0])!r}"
            )
        loaded = next(iter(loaded.values()))
    return loaded


def _check_columns(path: Path, mapping: FieldMapping, columns: list[str], where: RowFilter) -> None:
    for column in where:
        if column not in columns:
            raise ConfigError(
                f"{str(path)!r} has no column {column!r} to filter on (where);" + did_you_mean(column, columns)
            )
    for role, column in mapping.columns():
        if column not in columns:
            hint = f" (or set {role} to '' to import without it)" if role in OPTIONAL_ROLES else ""
            raise ConfigError(
                f"{str(path)!r} has no column {column!r} for the mapped field {role!r}{hint};"
                + did_you_mean(column, columns)
            )


def _import_rows(
    dataset: Dataset,
    path: Path,
    source: str,
    mapping: FieldMapping,
    limit: int | None,
    refs: list[str] | None,
    where: RowFilter,
) -> SourceResult:
    """Problems from a loaded dataset; `refs` names each row (JSONL line numbers), else `file:row` from 1."""
    _check_columns(path, mapping, dataset.column_names, where)
    result = SourceResult()
    needed = sorted({column for _, column in mapping.columns()} | set(where))
    index = 0
    for batch in dataset.select_columns(needed).iter(batch_size=_BATCH_ROWS):
        for values in zip(*(batch[c] for c in needed), strict=True):
            if limit is not None and len(result.problems) >= limit:
                return result
            ref = refs[index] if refs is not None else f"{path.name}:{index + 1}"
            index += 1
            row = dict(zip(needed, values, strict=True))
            if _matches(row, where):
                _append(result, map_row(row, ref, source, mapping))
    return result


# --- JSONL: through `datasets`, else line by line ---------------------------------------------------------------


def _import_jsonl_file(
    path: Path, source: str, mapping: FieldMapping, limit: int | None, where: RowFilter
) -> SourceResult:
    line_numbers, oversized = _content_lines(path)
    if not line_numbers:
        return SourceResult()
    if not oversized:
        try:
            dataset = _load_file("json", path)
        except _load_errors() as exc:
            log.info("datasets could not read %s (%s); reading it line by line", path, _describe(exc))
        else:
            if len(dataset) == len(line_numbers):
                refs = [f"{path.name}:{n}" for n in line_numbers]
                return _import_rows(dataset, path, source, mapping, limit, refs, where)
            log.info(
                "datasets read %d rows from %d lines of %s; reading it line by line",
                len(dataset),
                len(line_numbers),
                path,
            )
    return _import_jsonl_lines(path, source, mapping, limit, where)


def _content_lines(path: Path) -> tuple[list[int], bool]:
    """Numbers of the non-blank lines, and whether any line is longer than the limit."""
    numbers, oversized = [], False
    with open(path, "rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            if raw_line.strip():
                numbers.append(lineno)
                oversized = oversized or len(raw_line) > _MAX_LINE_BYTES
    return numbers, oversized


def _import_jsonl_lines(
    path: Path, source: str, mapping: FieldMapping, limit: int | None, where: RowFilter
) -> SourceResult:
    """The fallback reader: every line on its own, so one bad line is one `Reject`."""
    parsed: list[tuple[str, dict[str, Any] | Reject, str]] = []
    columns: set[str] = set()
    with open(path, "rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            ref = f"{path.name}:{lineno}"
            if len(raw_line) > _MAX_LINE_BYTES:
                parsed.append((ref, Reject.create("import", ref, f"line longer than {_MAX_LINE_BYTES} bytes"), ""))
                continue
            text = raw_line.decode("utf-8", errors="replace").strip()
            if text:
                row = _parse_line(text, ref)
                columns.update(row if isinstance(row, dict) else ())
                parsed.append((ref, row, text))
    if columns:
        _check_columns(path, mapping, sorted(columns), where)
    result = SourceResult()
    for ref, row, text in parsed:
        if limit is not None and len(result.problems) >= limit:
            break
        if isinstance(row, dict) and not _matches(row, where):
            continue
        _append(result, row if isinstance(row, Reject) else map_row(row, ref, source, mapping, text))
    return result


def _parse_line(text: str, ref: str) -> dict[str, Any] | Reject:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        return Reject.create("import", ref, f"malformed JSON: {exc.msg} at column {exc.colno}", text)
    if not isinstance(row, dict):
        return Reject.create("import", ref, f"expected a JSON object, got {type(row).__name__}", text)
    return row


# --- one row -----------------------------------------------------------------------------------------------------


def _matches(row: dict[str, Any], where: RowFilter) -> bool:
    """Whether `row` holds one of the allowed values in every filtered column (2 and 2.0 count as equal)."""
    return all(row.get(column) in allowed for column, allowed in where.items())


def _append(result: SourceResult, item: Problem | Reject) -> None:
    if isinstance(item, Reject):
        result.rejects.append(item)
    else:
        result.problems.append(item)
