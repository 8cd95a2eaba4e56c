"""``reinforge demo tune-agent``: tune a tool-using agent served by ``reinforge serve``; judge it on held-out questions.

1. The calculator tool model (a saved ``transformers`` directory: ``--model-dir``, else
   :func:`reinforge.demo_agent.tool_model` trains one) is served by the OpenAI-compatible service in a
   thread on loopback, with the calculator as an HTTP tool beside it (Agent RFT's endpoint shape) and
   three distractor tools (``lookup``, ``clock``, ``weather``: Python functions answering fixed text).
2. A multi-objective study (TPE) over the agent's knobs (:func:`space`: the system prompt, which tools
   are offered, the calculator's description, ``max_iterations``, temperature) on a few search
   questions: the calculator reward (the exact answer, and a part for a right call) up, tokens and
   tool calls per question down.
3. The out-of-the-box configuration (:data:`DEFAULT`: every tool, a generic system prompt, a one-line
   tool description, temperature 1, ``max_iterations`` 1, so the agent never reads the tool's answer)
   and the study's most accurate trial, both on held-out questions the search never saw:
   ``summary.json`` (accuracy, tokens and tool calls per question of each), ``trials.json``, the
   questions (``search.jsonl``, ``heldout.jsonl``) and ``pareto.png`` (accuracy against tokens and
   against tool calls, the fronts marked).

>>> space().validate(DEFAULT)["max_iterations"]
1
>>> search, heldout = question_rows(3, 5, seed=0)
>>> {r["messages"][0]["content"] for r in search} & {r["messages"][0]["content"] for r in heldout}
set()
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reinforge.errors import ReinforgeError
from reinforge.tasks.calculator import NAME, TOOL, CalculatorTask
from reinforge.tune.space import Float, Int, Space, Subset, Text, nest

SETTINGS: dict[str, Any] = dict(
    search_examples=24,  # the study's questions
    heldout_examples=64,  # the verdict's, never seen by the study
    n_trials=48,
    sampler="tpe",
    max_tokens=96,  # per turn: a calculator call is ~85 tokens
    concurrency=32,  # episodes in flight; the service batches their turns
)
QUICK: dict[str, Any] = dict(search_examples=4, heldout_examples=4, n_trials=3)
TOOL_MODEL = dict(rows=96, steps=150)  # the served model's SFT (without --model-dir): its questions and steps
KEY_ENV = "REINFORGE_DEMO_TUNE_AGENT_KEY"  # the LLM client reads its key from the environment
DISTRACTORS = ("lookup", "clock", "weather")  # reinforge.tune.toyagent's: nothing to do with arithmetic
DISTRACTOR_SPECS = [{"python": f"reinforge.tune.toyagent:{n}", "name": n} for n in DISTRACTORS]
SYSTEMS = [
    "You are a helpful assistant.",
    "",  # none: the prompt as the tool model was trained on
    "Call the calculator on the question's expression, then answer with its result alone.",
]
DESCRIPTIONS = [
    "Evaluate an expression.",
    "",  # none: the schema as the tool model was trained on
    "Exact arithmetic on two whole numbers: A+B or A*B.",
]
DEFAULT: dict[str, Any] = {  # what a user starts from
    "system": SYSTEMS[0],
    "tools": [NAME, *DISTRACTORS],
    "tool_descriptions.calculator": DESCRIPTIONS[0],
    "max_iterations": 1,
    "temperature": 1.0,
}
OBJECTIVES = {"score": "maximize", "tokens": "minimize", "tool_calls": "minimize"}


def settings(quick: bool) -> dict[str, Any]:
    return {**SETTINGS, **(QUICK if quick else {})}


def space() -> Space:
    """The agent's knobs; the calculator's description only when the calculator is offered."""
    return Space(
        {
            "system": Text(SYSTEMS),
            "tools": Subset([NAME, *DISTRACTORS], min_size=1),
            "tool_descriptions.calculator": Text(DESCRIPTIONS, when={"tools": NAME}),
            "max_iterations": Int(1, 4),
            "temperature": Float(0.0, 1.0),
        }
    )


def question_rows(n_search: int, n_heldout: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Search and held-out questions from the calculator task's validation split (expressions no
    training run of the tool model saw), no expression in both."""
    rows, seen = [], set()
    for row in CalculatorTask().make_rows(2 * (n_search + n_heldout), seed=seed + 100, split="validation"):
        if row["messages"][0]["content"] not in seen:
            seen.add(row["messages"][0]["content"])
            rows.append(row)
    return rows[:n_search], rows[n_search : n_search + n_heldout]


def accuracy(scores: list[float]) -> float:
    """The exact-answer rate under the calculator task's reward (0.8 for the exact answer + 0.2 for a
    call on the question's expression): an exact answer scores at least 0.8, anything else at most 0.2.

    >>> accuracy([1.0, 0.8, 0.2, 0.0])
    0.5
    """
    return sum(s >= 0.8 for s in scores) / len(scores)


def distractor_schemas() -> list[dict]:
    from reinforge.tune.agent_objective import load_agent_tools

    return list(load_agent_tools(DISTRACTOR_SPECS, Path("."), [])[1].values())


def varied_demonstrations(seed: int, quick: bool = False) -> list[dict]:
    """The agent demo's calculator demonstrations, each under a random system prompt (from :data:`SYSTEMS`),
    a random subset of the distractor tools beside the calculator, in random order, and a random calculator
    description (from :data:`DESCRIPTIONS`): the tool model learns to call the calculator whatever else the
    prompt holds, as instruction-tuned models do.

    >>> rows = varied_demonstrations(0, quick=True)
    >>> all(any(t["function"]["name"] == NAME for t in r["tools"]) for r in rows)
    True
    """
    from reinforge.tasks.calculator import demonstrations

    r = random.Random(seed)
    others = distractor_schemas()
    out = []
    for demo in demonstrations(CalculatorTask().make_rows(TOOL_MODEL["rows"] // (8 if quick else 1),
                                                          seed=seed + 1, split="train")):  # fmt: skip
        calculator: dict[str, Any] = copy.deepcopy(TOOL)
        if description := r.choice(DESCRIPTIONS):
            calculator["function"]["description"] = description
        tools = [calculator, *r.sample(others, r.randint(0, len(others)))]
        r.shuffle(tools)
        system = r.choice(SYSTEMS)
        messages = ([{"role": "system", "content": system}] if system else []) + demo["messages"]
        out.append({"messages": messages, "tools": tools})
    return out


def tool_model_dir(output_dir: Path, model_dir: Path | None, seed: int = 0, quick: bool = False) -> Path:
    """``model_dir`` checked, else the directory :func:`reinforge.demo_agent.tool_model` leaves."""
    if model_dir is None:
        from reinforge import demo_agent

        make, steps = getattr(demo_agent, "tool_model", None), 10 if quick else TOOL_MODEL["steps"]
        if make is None:
            raise ReinforgeError(
                "demo tune-agent: reinforge.demo_agent has no tool_model() yet (issue 17) to train the "
                "calculator tool model; pass --model-dir DIR, a saved transformers model that calls the calculator"
            )
        # trained on prompts as varied as the study's, so that more than one configuration works
        model_dir = Path(make(output_dir / "model", seed, quick, varied_demonstrations(seed, quick), steps))
    if not (Path(model_dir) / "config.json").is_file():
        raise ReinforgeError(
            f"--model-dir {model_dir}: no config.json there; give a saved transformers model directory "
            "(a run's final/ or sft/)"
        )
    return Path(model_dir)


@contextmanager
def served(model_dir: Path, data_dir: Path) -> Iterator[tuple[str, str]]:
    """``reinforge serve`` with ``model_dir`` and the HTTP calculator, in threads on loopback: (the
    service's base URL, the calculator's); a key for the service is in ``$KEY_ENV`` meanwhile."""
    from reinforge.demo_agent import ToolServer, calculator_app
    from reinforge.serve.app import ServeSettings, create_app
    from reinforge.serve.db import create_key

    app = create_app(ServeSettings(data_dir=data_dir, models=[str(model_dir)], chat_per_minute=10**6))
    _, key = create_key(app.state.service.engine, "demo-tune-agent")
    os.environ[KEY_ENV] = key
    try:
        with ToolServer(app) as url, ToolServer(calculator_app()) as tool_url:
            yield url, tool_url
    finally:
        os.environ.pop(KEY_ENV, None)


def make_objective(client, tool_url: str, rows: list[dict], s: dict, cache: Path):
    """``objective(params) -> metrics`` on ``rows``: ``score`` (the calculator task's reward: a right call
    earns a part, so the study is guided before any answer is right), ``accuracy``, and per question
    ``tokens``, ``tool_calls``, ...."""
    from reinforge.tune.agent_objective import AgentPipeline, load_agent_tools
    from reinforge.tune.objectives import whole_batch_objective

    specs: list[dict] = [
        {"name": NAME, "server_url": f"{tool_url}/{NAME}", "schema": TOOL},
        *DISTRACTOR_SPECS,
    ]
    tools, schemas = load_agent_tools(specs, Path("."), rows)
    pipeline = AgentPipeline(client, tools, schemas)
    obj = whole_batch_objective(pipeline, rows, CalculatorTask().grader, "calculator", cache, (0, 0))

    def objective(params: dict) -> dict:
        metrics = obj({**nest(params), "max_tokens": s["max_tokens"]})
        return {**metrics, "accuracy": accuracy(metrics["scores"])}

    return objective


def plot_pareto(path: Path, trials: list[dict], default: dict, tuned: dict) -> Path:
    """Accuracy against tokens and against tool calls per question: the search's trials with each
    panel's Pareto front, and the default and tuned configurations on the held-out questions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reinforge.tune.pareto import non_dominated_sort, to_minimize

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, cost, label in zip(axes, ("tokens", "tool_calls"), ("tokens", "tool calls")):
        pts = [(t[cost], t["accuracy"]) for t in trials]
        fronts = non_dominated_sort(to_minimize(pts, ["minimize", "maximize"]).tolist()) if pts else []
        ax.scatter(
            [p[0] for p in pts], [p[1] for p in pts], s=16, color="C0", alpha=0.6, label="trial (search)"
        )
        front = sorted(p for p, f in zip(pts, fronts) if f == 0)
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], "o-", where="post", color="C3",
                    label="Pareto front (search)")  # fmt: skip
        for point, marker, color, name in (
            (default, "s", "0.6", "default (held-out)"),
            (tuned, "*", "gold", "tuned (held-out)"),
        ):
            ax.scatter([point[cost]], [point["accuracy"]], s=120, marker=marker, color=color, edgecolor="k",
                       zorder=3, label=name)  # fmt: skip
        ax.set_xlabel(f"{label} per question")
        ax.set_ylabel("accuracy (exact answer)")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def clean(out: Path) -> None:
    """An empty run directory, but for a tool model cached in ``model/``."""
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.name != "model":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def run_demo_tune_agent(
    output_dir: Path = Path("runs/demo-tune-agent"),
    model_dir: Path | None = None,
    quick: bool = False,
    seed: int = 0,
) -> dict:
    from reinforge import tune
    from reinforge.demo_agent import write_jsonl
    from reinforge.train.progress import console, print_table
    from reinforge.train.run import write_summary
    from reinforge.tune.llm_client import LLMClient

    t0 = time.time()
    s = settings(quick)
    out = Path(output_dir)
    model = tool_model_dir(
        out, model_dir, seed, quick
    )  # before anything is written: a wrong --model-dir is one line
    clean(out)
    say = lambda text: console.print(f"[bold cyan]demo tune-agent[/] {text}")  # noqa: E731
    search, heldout = question_rows(s["search_examples"], s["heldout_examples"], seed)
    write_jsonl(out / "search.jsonl", search)
    write_jsonl(out / "heldout.jsonl", heldout)
    with served(model, out / "serve") as (url, tool_url):
        say(f"1/3 serving {model} at {url}/v1, the calculator at {tool_url}/{NAME}")
        client = LLMClient(
            model.resolve().name, f"{url}/v1", KEY_ENV, s["concurrency"], source="demo tune-agent"
        )
        client.chat(
            [{"role": "user", "content": "1+1"}], max_tokens=1
        )  # loads it: a broken model is one line
        on_search = make_objective(client, tool_url, search, s, out / "cache.db")
        on_heldout = make_objective(client, tool_url, heldout, s, out / "cache.db")
        say(f"2/3 study: {s['n_trials']} trials ({s['sampler']}) on {len(search)} search questions")

        def progress(study, trial) -> None:
            m = trial.attrs
            console.print(
                f"    trial {trial.number + 1}/{s['n_trials']}: accuracy {m.get('accuracy', 0):.3f}, "
                f"reward {m.get('score', 0):.3f}, "
                f"{m.get('tokens', 0):.0f} tokens, {m.get('tool_calls', 0):.2f} calls  {brief(trial.params)}"
            )

        study = tune.run(on_search, space(), s["sampler"], s["n_trials"], seed, directions=OBJECTIVES,
                         storage=out / "study.db", study_name="tune-agent", progress=progress)  # fmt: skip
        best = study.best
        say(f"3/3 the default and the tuned configuration on {len(heldout)} held-out questions")
        default, tuned = on_heldout(DEFAULT), on_heldout(best.params)
    trials = [dict(t.attrs, params=t.params) for t in study.finished()]
    study.export(out / "trials.json")
    plot_pareto(out / "pareto.png", trials, default, tuned)
    summary = {
        "model": str(model),
        "search_examples": len(search),
        "heldout_examples": len(heldout),
        "trials": len(study.trials),
        "default_params": DEFAULT,
        "best_params": best.params,
        "best_search_accuracy": best.attrs.get("accuracy"),
        **{f"{name}_{k}": m[metric] for name, m in (("default", default), ("tuned", tuned))
           for k, metric in (("accuracy", "accuracy"), ("reward", "score"), ("tokens_per_example", "tokens"),
                             ("tool_calls_per_example", "tool_calls"))},
        "seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    write_summary(out, summary)
    shown = {k: v for k, v in summary.items() if not k.endswith("_params")}
    print_table(f"reinforge demo tune-agent ({out})", {**shown, "best_params": brief(best.params)})
    return summary


def brief(params: dict) -> str:
    """A configuration on one short line.

    >>> brief({"tools": ["calculator"], "max_iterations": 2, "temperature": 0.123456, "system": ""})
    "tools=['calculator'] max_iterations=2 temperature=0.12 system=''"
    """
    return " ".join(f"{k}={round(v, 2) if isinstance(v, float) else repr(v)}" for k, v in params.items())
