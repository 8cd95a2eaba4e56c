"""``reinforge grade``: grade a JSONL of ``{item, sample}`` rows with a grader spec, or validate a spec.

Input rows: ``{"item": {...}, "sample": {"output_text": "...", ...}}`` or ``{"item": ..., "model_sample":
"..."}``. Output rows, in input order: ``{"reward", "sub_rewards", "errors"}`` where ``errors`` holds the
flags that fired and their details. A summary (rows, mean reward, error counts, grades/s) goes to stderr.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from reinforge.data.jsonl import iter_jsonl
from reinforge.errors import ConfigError, DataError
from reinforge.graders.base import ERROR_DETAILS, Grade, make_sample
from reinforge.graders.registry import build_grader, load_spec, validate

CHUNK = 4096  # rows graded per grade_batch call (bounded memory on huge files)


def row_pair(row: dict, where: str) -> tuple[dict, dict]:
    """``(item, sample)`` from one input row; ``where`` is ``file:line`` for the error."""
    item = row.get("item", {})
    if not isinstance(item, dict):
        raise DataError(f"{where}: 'item' must be an object")
    if "sample" in row:
        sample = row["sample"]
        if isinstance(sample, str):
            return item, make_sample(sample)
        if not isinstance(sample, dict) or not isinstance(sample.get("output_text", ""), str):
            raise DataError(f"{where}: 'sample' must be an object with a string output_text")
        full = make_sample(sample.get("output_text", ""), sample.get("output_tools"), sample.get("choices"))
        full.update(sample)
        return item, full
    if isinstance(row.get("model_sample"), str):
        return item, make_sample(row["model_sample"])
    raise DataError(f"{where}: needs 'sample' {{\"output_text\": ...}} or 'model_sample' \"...\"")


def output_row(g: Grade) -> dict:
    errors: dict = {k: True for k, v in g.errors.items() if v}
    if errors:
        for key in ERROR_DETAILS:
            if g.metadata.get(key) is not None:
                errors[key] = g.metadata[key]
        errors.setdefault("details", g.metadata.get("error"))
    return {"reward": g.reward, "sub_rewards": g.sub_rewards, "errors": errors}


def _chunks(path: Path) -> Iterator[list[tuple[dict, dict]]]:
    chunk: list[tuple[dict, dict]] = []
    for lineno, row in iter_jsonl(path):
        chunk.append(row_pair(row, f"{path}:{lineno}"))
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def grade_bar(path: Path):
    """A progress bar on stderr over the rows of ``path`` (counted first for JSONL, else open-ended),
    shown for inputs longer than one batch (``CHUNK`` rows)."""
    lines = count_rows(path)
    columns = (TextColumn("grade"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[reward]}"))
    show = lines is None or lines > CHUNK
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), disable=not show) as bar:
        yield bar, bar.add_task("grade", total=lines, reward="")


def count_rows(path: Path) -> int | None:
    """Non-blank lines of a JSONL file, or None for another source (its length is not known up front)."""
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson") or not path.is_file():
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def grade_command(
    grader: Path | None = None,
    input: Path | None = None,
    output: Path | None = None,
    validate: Path | None = None,
    workers: int | None = None,
) -> None:
    if validate is not None:
        return _validate_only(validate)
    if grader is None or input is None:
        raise ConfigError(
            "reinforge grade: give --grader G.json and --input PAIRS.jsonl (or --validate G.json)"
        )
    if output is not None and not output.parent.is_dir():
        raise ConfigError(f"--output {output}: no directory {output.parent}; create it or write elsewhere")
    spec = load_spec(grader)
    g = build_grader(spec, workers=workers)
    n, total, errors = 0, 0.0, Counter[str]()
    t0 = time.perf_counter()
    out = open(output.with_name(output.name + ".tmp"), "w", encoding="utf-8") if output else sys.stdout
    try:
        chunks = _chunks(Path(input))
        first = next(chunks, None)  # a source that cannot be read fails here, before a bar is drawn
        with grade_bar(Path(input)) as (bar, task):
            for chunk in itertools.chain([first] if first else [], chunks):
                for grade in g.grade_batch(chunk):
                    out.write(json.dumps(output_row(grade), ensure_ascii=False) + "\n")
                    n += 1
                    total += grade.reward
                    errors.update(k for k, v in grade.errors.items() if v)
                bar.update(task, completed=n, reward=f"reward {total / n:.4f}")
        if output:
            out.close()
            output.with_name(output.name + ".tmp").replace(output)
    finally:
        if output and not out.closed:
            out.close()
        g.close()
    dt = time.perf_counter() - t0
    err_text = ", ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"
    print(
        f"graded {n} rows with {spec.get('type')} grader '{spec.get('name', '')}': mean reward "
        f"{total / max(n, 1):.4f}; errors: {err_text}; {n / max(dt, 1e-9):,.0f} grades/s"
        + (f"; wrote {output}" if output else ""),
        file=sys.stderr,
    )


def _validate_only(path: Path) -> None:
    spec = load_spec(path)
    problems = validate(spec)
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {problems[0]}{more}")
    print(f"{path}: valid {spec['type']} grader '{spec.get('name', '')}'", file=sys.stderr)
