"""The ``reinforge tune`` config: a study's space, objective(s), sampler, scheduler, budget and outputs.

One class per section, each field documented beside it (``reinforge config tune`` lists them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from reinforge.config import Config
from reinforge.train.trackers import TrackerSettings
from reinforge.tune.space import SpaceSpec
from reinforge.tune.train_objective import PBTSettings


class LLMSettings(Config):
    """The model an objective calls: an OpenAI-compatible endpoint, or a local model without base_url."""

    model: str  # the model's name at base_url; without base_url a local HF dir or tiny:<task>:<size>
    base_url: str | None = None  # e.g. https://api.openai.com/v1, http://127.0.0.1:8000/v1 (reinforge serve)
    api_key_env: str | None = None  # environment variable holding the key (never the key itself)
    concurrency: int = 4  # requests in flight at once
    max_retries: int = 4  # retries of a connection error, timeout, 408/409/429/5xx (Retry-After honoured)
    timeout_s: float = 60.0  # seconds before a request is abandoned (then retried)


class ObjectiveSettings(Config):
    type: Literal["rag", "generation", "chat", "agent", "workflow", "train", "python"]  # what is tuned
    # -- chat, agent, workflow (and rag's answers): the user's rows, grader and model
    data: str | None = None  # JSONL of OpenAI RFT rows {"messages": [...], <reference fields>}
    llm: LLMSettings | None = None  # the model called (rag: answers from the retrieved context)
    few_shot_data: str | None = None  # chat: JSONL of worked examples (messages ending with the answer)
    tools: list[dict] | str | None = None  # agent: Agent RFT tool specs (python:|server_url:) or a file
    agents: dict[str, dict] | None = None  # agent: sub-agents {name: {description, prompt, tools, ...}}
    workflow: dict | str | None = None  # workflow: {start, steps, schemas}, or a YAML file of it
    # -- rag
    documents: str | None = None  # JSONL of {"id", "text", "title"?}
    questions: str | None = None  # JSONL of {"question", "doc_id", <reference fields for an answer grader>}
    # -- generation
    model: str | None = None  # local HF dir or tiny:<task>:<size>
    task: str = "addition"  # built-in task giving the validation rows and the grader
    examples: int = 64  # validation rows graded per trial
    shots: int = 8  # pool of train rows for few-shot examples
    grader: dict | str | None = (
        None  # OpenAI grader JSON (generation: default the task's; rag with llm: over the answers)
    )
    # -- train
    base: dict | str | None = None  # a GRPO config (inline or a YAML path) the tuned values go into
    # -- python
    function: str | None = None  # "package.module:function", objective(params) or (params, budget)


class BudgetSettings(Config):
    trials: int | None = None  # stop after this many trials
    examples: int | None = None  # stop after this many graded examples
    tokens: int | None = None  # stop after this many generated tokens
    seconds: float | None = None  # stop after this many seconds
    cost_usd: float | None = None  # stop once trials cost this much at `prices`


class PriceSettings(Config):
    input_per_1k: float = 0.0  # money per 1000 prompt tokens
    output_per_1k: float = 0.0  # money per 1000 completion tokens


class TuneConfig(TrackerSettings):
    """A study: space, objective(s), sampler, scheduler, budget, executor, outputs; ``report_to``
    sends each finished trial to the trackers as a run of its own (``train/trackers.py``)."""

    study: str = "study"  # study name inside the storage file
    # SQLite file (default: <output_dir>/study.db), or a database URL (postgresql://USER@HOST/DB): Optuna's
    # storage, where processes on several machines run trials of one study (tune/storage_rdb.py)
    storage: str | None = None
    output_dir: str = "runs/tune"  # exports, plots, best.yaml, training runs
    space: SpaceSpec  # name -> {type: int|float|bool|choice|text, ...}; a list is a choice
    objective: ObjectiveSettings
    objectives: dict[str, Literal["minimize", "maximize"]] = {"score": "maximize"}  # metric -> direction
    constraints: list[str] = []  # "metric <= number" over the objective's metrics
    sampler: str | dict = (
        "bayes"  # bayes|tpe|gp|cmaes|nsga2|random|quasirandom|grid|evolution, or {name: ...}
    )
    n_trials: int = 30  # trials to run (the budget may stop sooner)
    seed: int = 0  # seed of the sampler
    scheduler: dict | None = None  # {type: asha|hyperband|halving|paired, min_budget, max_budget, eta}
    executor: str | dict = "local"  # local | processes | {type: ray, address: auto}
    workers: int = 1  # trials run at once
    budget: BudgetSettings = BudgetSettings()
    prices: PriceSettings = PriceSettings()
    estimate_probes: int = 2  # probe configurations for the cost estimate (0: skip it)
    pbt: PBTSettings | None = None  # train objectives only: population-based training instead of a search
    best_config: dict | str | None = None  # base config the best values are merged into for best.yaml

    @property
    def storage_path(self) -> Path:
        """The study's SQLite file, which also caches evaluations; with a database URL, the cache alone
        (``<output_dir>/cache.db``, one per machine)."""
        if self.storage and "://" in self.storage:
            return Path(self.output_dir) / "cache.db"
        return Path(self.storage) if self.storage else Path(self.output_dir) / "study.db"

    @property
    def study_storage(self) -> str | Path:
        """Where the study lives: the database URL, else :attr:`storage_path`."""
        return self.storage if self.storage and "://" in self.storage else self.storage_path
