"""``multi``: several named graders combined by a ``calculate_output`` formula.

``graders`` is a dict of name -> grader spec (a list is keyed by each grader's ``name``);
``calculate_output`` uses those names with ``+ - * / ^``, parentheses and ``min max abs floor ceil
exp sqrt log`` (see :mod:`reinforge.graders.formula`, our own parser: no ``eval``). Each sub-grader's
reward is in ``sub_rewards``. When any sub-grader reports an error the errors are passed up and the
reward is 0 (a recorded zero, like every grader error); a math error in the formula (``1/0``) is an
``other_error``.

>>> from reinforge.graders.string_check import StringCheckGrader
>>> sc = lambda ref: StringCheckGrader({"input": "{{sample.output_text}}", "reference": ref, "operation": "eq"})
>>> g = MultiGrader({"calculate_output": "0.5 * a + 0.5 * b"}, {"a": sc("x"), "b": sc("y")})
>>> g.grade({}, {"output_text": "x"}).reward
0.5
"""

from __future__ import annotations

from collections.abc import Sequence

from reinforge.graders.base import Grade, Grader, error_grade
from reinforge.graders.formula import evaluate, parse_formula


class MultiGrader(Grader):
    def __init__(self, spec: dict, graders: dict[str, Grader]):
        self.name = spec.get("name", "multi")
        self.graders = graders
        self.formula = parse_formula(spec["calculate_output"])
        self.pass_threshold = spec.get("pass_threshold")

    def grade(self, item: dict, sample: dict) -> Grade:
        return self.grade_batch([(item, sample)])[0]

    def grade_batch(self, pairs: Sequence[tuple[dict, dict]]) -> list[Grade]:
        # each sub-grader grades the whole batch on its own fast path, then rows are combined
        columns = {name: g.grade_batch(pairs) for name, g in self.graders.items()}
        return [self._combine({name: col[i] for name, col in columns.items()}) for i in range(len(pairs))]

    def _combine(self, subs: dict[str, Grade]) -> Grade:
        sub_rewards = {name: g.reward for name, g in subs.items()}
        errors = {flag: True for g in subs.values() for flag, on in g.errors.items() if on}
        meta: dict = {}
        for name, g in subs.items():
            for key, value in g.metadata.items():
                if key.endswith("_details") or key.endswith("_type") or key == "error":
                    meta.setdefault(key, f"{name}: {value}")
                elif key == "sampled_model_name":
                    meta.setdefault(key, value)
        if errors:
            return Grade(0.0, meta, errors, sub_rewards)
        try:
            reward = evaluate(self.formula, sub_rewards)
        except (ArithmeticError, ValueError) as e:
            g = error_grade("other_error", f"calculate_output: {type(e).__name__}: {e}")
            g.sub_rewards = sub_rewards
            return g
        if self.pass_threshold is not None:
            meta["passed"] = reward >= self.pass_threshold
        return Grade(reward, meta, {}, sub_rewards)

    def close(self) -> None:
        for g in self.graders.values():
            g.close()
