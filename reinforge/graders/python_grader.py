"""``python``: the user's ``grade(sample, item) -> float`` run in the sandbox pool.

Exceptions, NaN/inf, non-numbers, rewards beyond ``max_abs_reward`` and limit breaches score 0
with ``python_grader_runtime_error`` and its details; a worker that cannot start is a
``python_grader_server_error``. Workers run in bubblewrap's OS sandbox (see
:mod:`~reinforge.graders.sandbox_bwrap`). Limits are reinforge's extension key ``limits`` (see
:class:`~reinforge.graders.sandbox.SandboxLimits`); OpenAI's ``image_tag`` is accepted and ignored.

>>> g = PythonGrader({"type": "python", "name": "p",
...                   "source": "def grade(sample, item):\\n    return float(sample['output_text'] == item['a'])\\n"})
>>> [x.reward for x in g.grade_batch([({"a": "4"}, {"output_text": "4"}), ({"a": "4"}, {"output_text": "5"})])]
[1.0, 0.0]
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Sequence

from reinforge.graders.base import Grade, Grader, error_grade
from reinforge.graders.sandbox import MAX_SOURCE_BYTES, SandboxLimits, get_pool
from reinforge.graders.sandbox_bwrap import unsandboxed_error

LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(SandboxLimits))


def source_errors(source: object, where: str = "source") -> list[str]:
    """Static checks done at validation: a string <= 256 kB that compiles and defines ``grade``."""
    if not isinstance(source, str):
        return [f"{where}: must be a string of Python code"]
    if len(source.encode()) > MAX_SOURCE_BYTES:
        return [f"{where}: {len(source.encode())} bytes; the limit is {MAX_SOURCE_BYTES} (256 kB)"]
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"{where}: syntax error at line {e.lineno}: {e.msg}"]
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    names |= {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    if "grade" not in names:
        return [f"{where}: defines no top-level `def grade(sample, item) -> float`"]
    return []


def sandbox_errors(where: str = "type") -> list[str]:
    """The check of this machine done at validation: a server that refuses unsandboxed python graders
    (``reinforge serve`` without bubblewrap and without ``--allow-unsandboxed-python-graders``) refuses them."""
    err = unsandboxed_error()
    return [f"{where}: {err}"] if err else []


def limits_from_spec(spec: dict) -> SandboxLimits:
    return SandboxLimits(**(spec.get("limits") or {}))


def _jsonable(obj):
    """Samples and items travel as JSON; anything else becomes its string."""
    return json.loads(json.dumps(obj, default=str))


class PythonGrader(Grader):
    def __init__(self, spec: dict, workers: int | None = None):
        self.name = spec.get("name", "python")
        self.source = spec["source"]
        self.pass_threshold = spec.get("pass_threshold")
        self.limits = limits_from_spec(spec)
        self.workers = workers

    @property
    def pool(self):
        return get_pool(self.workers, self.limits)

    def grade(self, item: dict, sample: dict) -> Grade:
        return self.grade_batch([(item, sample)])[0]

    def grade_batch(self, pairs: Sequence[tuple[dict, dict]]) -> list[Grade]:
        rows = [(_jsonable(sample), _jsonable(item)) for item, sample in pairs]
        out = []
        for reward, err in self.pool.run(self.source, rows):
            if err is None:
                meta = {} if self.pass_threshold is None else {"passed": reward >= self.pass_threshold}
                out.append(Grade(reward, meta))
            elif err.startswith("server:"):
                out.append(error_grade("python_grader_server_error", err[len("server:") :].strip()))
            else:
                out.append(error_grade("python_grader_runtime_error", err))
        return out
