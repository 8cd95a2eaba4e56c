"""``reinforge demo agent``: a tiny model learns to use a calculator for arithmetic it cannot do alone.

1. Two copies of a tiny model learn, by SFT, from the same few dozen 4-6 digit additions and
   multiplications: one from demonstrations of the calculator in use (the call, the tool's answer,
   the final answer, in the Hermes format its chat template teaches), one from the answers alone
   (the no-tool baseline: a 1M-parameter model cannot multiply six-digit numbers).
2. RFT (GRPO) of the tool model in multi-turn episodes against a real HTTP calculator the demo serves
   on loopback (Agent RFT's endpoint shape: arguments POSTed as JSON, an ``X-Rollout-Id`` header),
   graded on the final answer and the calls (:func:`reinforge.tasks.calculator.calculator_reward`).
3. ``summary.json`` (``no_tool_val_reward``, ``sft_val_reward``, ``final_val_reward``,
   ``valid_call_rate``, ``mean_tool_calls``, ``discarded_rollouts``, ``seconds``) and ``agent_demo.png``
   (reward and tool calls per episode against step).

Both copies start from the shipped base (:mod:`reinforge.demo_agent_base`: generic tool use learnt with a
``lookup`` tool, the stand-in for a pretrained LLM). The demonstrations are written as a person would: every
multiplication with the calculator, 9 in 10 additions answered in the head (``mental_additions``); SFT
imitates that and answers most additions without the tool, wrongly, and RFT learns to call it for them too.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from reinforge.demo_agent_base import load_base, sft
from reinforge.tasks.calculator import NAME, CalculatorTask, calculator, demonstrations

# The recipe, in one place (2 CPU cores).
SETTINGS: dict[str, Any] = dict(
    demonstrations=48,  # the only calculator examples anyone wrote
    # ...by people who add in their heads: 9 in 10 of their additions have no call (multiplications all do)
    mental_additions=0.9,
    sft_steps=60,
    sft_batch=16,
    sft_lr=1e-3,
    validation_examples=64,
    max_new_tokens=48,  # per turn: the call (~30 tokens) and its end token
    agent=dict(max_episode_steps=3, max_tool_calls=2, max_episode_tokens=160),
    rft=dict(
        steps=40,
        prompts_per_step=8,
        group_size=8,  # 64 episodes per step
        learning_rate=3e-4,
        lr_schedule="constant",
        loss_type="dapo",
        beta=0.0,
        eval_interval=10,
        save_interval=20,
        train_examples=2000,
    ),
)
QUICK: dict[str, Any] = dict(
    demonstrations=8,
    sft_steps=10,
    sft_batch=8,
    validation_examples=8,
    rft=dict(steps=2, prompts_per_step=2, group_size=2, eval_interval=1, save_interval=2),
)


def settings(quick: bool) -> dict[str, Any]:
    s = {**SETTINGS, **(QUICK if quick else {})}
    s["rft"] = {**SETTINGS["rft"], **(QUICK["rft"] if quick else {})}
    return s


def calculator_app():
    """The calculator as an HTTP tool endpoint: ``POST /calculator`` with ``{"expression": "12*34"}`` answers
    the result as text; a bad expression is a 400 whose text goes back to the model."""
    app = FastAPI()

    @app.post(f"/{NAME}")
    async def calc(request: Request) -> PlainTextResponse:
        try:
            args = await request.json()
            return PlainTextResponse(calculator(**args))
        except (TypeError, ValueError) as e:  # not JSON, wrong arguments, or a bad expression
            return PlainTextResponse(f"calculator: {e}", status_code=400)

    return app


class ToolServer:
    """An ASGI app served by uvicorn in a thread on loopback: ``with ToolServer(app) as url: ...``."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # log_config=None: uvicorn's dictConfig would close every logging handler the host process has
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the tool server did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def plot_agent_demo(out: Path, summary: dict, records: list[dict]) -> Path:
    """Reward (train, validation, the baselines) and tool calls per episode against RFT step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for ax, train_key, eval_key, label in (
        (a, "reward/mean", "eval/reward_mean", "reward"),
        (b, "agent/tool_calls_mean", "eval/agent/tool_calls_mean", "tool calls per episode"),
    ):
        tr = [(r["step"], r[train_key]) for r in records if r.get("kind") == "train" and train_key in r]
        ev = [(r["step"], r[eval_key]) for r in records if r.get("kind") == "eval" and eval_key in r]
        if tr:
            ax.plot(*zip(*tr), alpha=0.4, label="train (sampled)")
        if ev:
            ax.plot(*zip(*ev), "o-", label="validation (greedy)")
        ax.set_xlabel("RFT step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    a.axhline(summary["no_tool_val_reward"], color="gray", ls="--", label="SFT without tools")
    a.axhline(summary["sft_val_reward"], color="gray", ls=":", label="SFT with tools")
    a.set_ylim(0, 1.05)
    a.legend(loc="lower right", fontsize=8)
    b.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = out / "agent_demo.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def valid_call_rate(metrics: dict, prefix: str = "") -> float | None:
    """Well-formed calls over all calls of a validation's episodes; None when no call was made at all.

    >>> valid_call_rate({"agent/tool_calls_mean": 0.0, "agent/invalid_call_rate": 0.0}) is None
    True
    >>> valid_call_rate({"eval/agent/tool_calls_mean": 1.5, "eval/agent/invalid_call_rate": 0.25}, "eval/")
    0.75
    """
    invalid = metrics.get(f"{prefix}agent/invalid_call_rate", 0.0)
    if metrics.get(f"{prefix}agent/tool_calls_mean", 0.0) == 0 and invalid == 0:
        return None
    return 1 - invalid


def tool_model(
    out: Path, seed: int = 0, quick: bool = False, demos: list[dict] | None = None, steps: int | None = None
) -> Path:
    """A calculator tool model for other demos (``demo tune-agent``): the shipped base after SFT on ``demos``
    (default: this demo's questions, every one demonstrated with the calculator), saved at ``out``."""
    from reinforge.models.tiny import save_tiny

    s = settings(quick)
    model, tok, _ = load_base(None, quick, Path(out).with_name(Path(out).name + "-base"))
    if demos is None:
        demos = demonstrations(CalculatorTask().make_rows(s["demonstrations"], seed=seed + 1, split="train"))
    sft(model, tok, demos, steps or s["sft_steps"], s["sft_batch"], seed, "SFT, tool", s["sft_lr"])
    return save_tiny(model, tok, Path(out))


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def run_demo_agent(
    output_dir: Path = Path("runs/demo-agent"), quick: bool = False, seed: int = 0, base: Path | None = None
) -> dict:
    """The demo; ``base``: a base model directory built by :func:`build_base` instead of the shipped one."""
    import torch

    from reinforge.models.generation import HFBackend
    from reinforge.models.tiny import save_tiny
    from reinforge.tasks import sft_rows
    from reinforge.train.agent import AgentRunner, AgentSettings
    from reinforge.train.evaluate import evaluate
    from reinforge.train.grpo import GRPOConfig, train_grpo
    from reinforge.train.progress import console, print_table
    from reinforge.train.run import write_summary

    t0 = time.time()
    s = settings(quick)
    out = Path(output_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    say = lambda text: console.print(f"[bold cyan]demo agent[/] {text}")  # noqa: E731
    task = CalculatorTask()
    rows = task.make_rows(s["demonstrations"], seed=seed + 1, split="train")
    val = task.make_rows(s["validation_examples"], seed=seed, split="validation")
    mt = s["max_new_tokens"]

    warmed, tok, base = load_base(base, quick, out / "base")
    say(f"1/3 SFT of the base ({base}) on {len(rows)} questions: without the tool, then with it")
    lr, steps, batch = s["sft_lr"], s["sft_steps"], s["sft_batch"]
    plain, tool_model = copy.deepcopy(warmed), warmed
    sft(plain, tok, sft_rows(rows), steps, batch, seed, "SFT, no tool", lr)
    no_tool = [{k: v for k, v in r.items() if k != "tools"} for r in val]
    no_tool_score = evaluate(HFBackend(plain, tok), tok, task.grader, no_tool, max_tokens=16)["reward_mean"]
    demos = demonstrations(rows, s["mental_additions"], seed)
    sft(tool_model, tok, demos, steps, batch, seed, "SFT, tool", lr)
    save_tiny(tool_model, tok, out / "sft")
    console.print(f"    validation reward without the tool: {no_tool_score:.3f}")

    with ToolServer(calculator_app()) as url:
        say(f"2/3 RFT (GRPO): episodes against the calculator at {url}/{NAME}")
        agent = AgentSettings(tools=[{"name": NAME, "server_url": f"{url}/{NAME}"}], **s["agent"])
        sft_eval = evaluate(
            HFBackend(tool_model, tok), tok, task.grader, val, mt, agent=AgentRunner(agent, mt)
        )
        console.print(
            f"    SFT with the tool: validation reward {sft_eval['reward_mean']:.3f}, "
            f"{sft_eval['agent/tool_calls_mean']:.2f} calls per episode"
        )
        train = task.make_rows(s["rft"]["train_examples"], seed=seed + 3, split="train")
        cfg = GRPOConfig(
            model=str(out / "sft"),
            task=task.name,  # the grader
            train_file=write_jsonl(out / "train.jsonl", train),
            validation_file=write_jsonl(out / "validation.jsonl", val),
            output_dir=str(out / "rft"),
            seed=seed,
            max_new_tokens=mt,
            agent=agent,
            audit=False,
            **{k: v for k, v in s["rft"].items() if k != "train_examples"},
        )
        rft = train_grpo(cfg)

    say("3/3 summary")
    records = [json.loads(x) for x in (out / "rft" / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in records if r.get("kind") == "eval"][-1]
    summary = {
        "task": task.name,
        "base": str(base),
        "demonstrations": len(rows),
        "validation_examples": len(val),
        "rft_episodes": s["rft"]["steps"] * s["rft"]["prompts_per_step"] * s["rft"]["group_size"],
        "no_tool_val_reward": no_tool_score,
        "sft_val_reward": sft_eval["reward_mean"],
        "final_val_reward": rft["final_val_reward"],
        "sft_valid_call_rate": valid_call_rate(sft_eval),
        "valid_call_rate": valid_call_rate(last_eval, "eval/"),
        "mean_tool_calls": last_eval.get("eval/agent/tool_calls_mean", 0.0),
        "discarded_rollouts": rft.get("discarded_rollouts", 0),
        "seconds": round(time.time() - t0, 1),
    }
    write_summary(out, summary)
    plot_agent_demo(out, summary, records)
    print_table(f"reinforge demo agent ({out})", summary)
    return summary
