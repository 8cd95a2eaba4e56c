"""Built-in tasks used by demos, tests and benchmarks: a data generator and a grader each.

>>> task = get_task("addition")
>>> row = task.make_rows(1, seed=0)[0]
>>> sorted(row)
['answer', 'messages']
"""

from __future__ import annotations

from typing import Protocol

from reinforge.errors import ReinforgeError
from reinforge.graders.base import Grader


class Task(Protocol):
    name: str
    grader: Grader

    def make_rows(self, n: int, seed: int = 0, split: str = "train") -> list[dict]:
        """``n`` OpenAI RFT rows (``messages`` + reference fields) from the train or validation split."""
        ...


def sft_rows(rows: list[dict], answer_key: str = "answer") -> list[dict]:
    """Labelled chat rows for SFT: the prompt messages plus the reference answer as the assistant turn."""
    return [
        {"messages": [*r["messages"], {"role": "assistant", "content": str(r[answer_key])}]} for r in rows
    ]


def _tasks() -> dict[str, type]:
    from reinforge.tasks.addition import AdditionTask, ReversedAdditionTask
    from reinforge.tasks.calculator import CalculatorTask
    from reinforge.tasks.reverse import ReverseTask

    tasks: dict[str, type] = {
        "addition": AdditionTask,
        "reversed_addition": ReversedAdditionTask,
        "reverse": ReverseTask,
        "calculator": CalculatorTask,  # rows with `tools`: the agent demo's
    }
    try:
        from reinforge.tasks.sentiment import SentimentTask  # the RLHF demo's text task, when present

        tasks["sentiment"] = SentimentTask
    except ImportError:
        pass
    return tasks


def task_names() -> list[str]:
    """The built-in tasks' names, sorted."""
    return sorted(_tasks())


def get_task(name: str) -> Task:
    tasks = _tasks()
    if name not in tasks:
        raise ReinforgeError(f"task {name!r}: unknown built-in task; choose one of {sorted(tasks)}")
    return tasks[name]()
