"""Multi-turn GRPO with a Python tool: reinforge vs TRL's tool-calling GRPOTrainer, side by side in one run.

The model is a tiny chat model (:mod:`reinforge.models.tiny`, 1m or 11m) SFT'd on calculator demonstrations
(:mod:`reinforge.tasks.calculator`) until it calls the tool: an episode is the model's call, the tool's
answer, and the model's final answer. The SFT'd weights are cached (``--cache-dir``, default under
``REINFORGE_CACHE``), so only the first run of a size pays for them.

Both sides get the same weights, the same prompts (the same ``--prompts`` calculator questions every step,
``--group`` episodes each), the same tool (:func:`calculator`, a Python function, whose schema both render
into the same prompt tokens), the same Hermes call format and the same limits: at most ``TURNS`` model turns
(one tool round), at most ``BUDGET`` tokens after the prompt (generated and tool tokens together, each turn
allowed the whole budget), temperature 1, beta 0.04, DAPO token averaging, fp32. A call that cannot be read
ends the episode on both sides (TRL reads it as plain text).

TRL reads calls with the tokenizer's ``response_template`` (``add_response_schema`` knows Qwen's, Llama's, ...
templates, not the tiny one), so the benchmark gives the tiny tokenizer :data:`TINY_RESPONSE_TEMPLATE`:
TRL's own ``qwen3_template`` with the tiny role tokens. The sides run in alternating blocks (TRL, reinforge,
...) so load from other processes hits both alike; each figure is the median step time after a warm-up step.
Tool calls executed per episode are counted in the tool itself, for each side.

    python -m benchmarks.bench_agent --size 1m --steps 2 --blocks 2
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch

from benchmarks.bench_grpo import TRL_QUIET, peak_rss_mib, trl_step_timer
from reinforge.tasks import calculator as task

GROUP, PROMPTS, TURNS, BUDGET, BETA, LR = 8, 8, 2, 192, 0.04, 1e-5
# the demonstrations' SFT: (steps, batch, lr) stages; enough for well-formed calls (the 1m: 28 of 32 at temperature 1)
SFT = {"1m": [(200, 16, 5e-3)], "11m": [(60, 8, 2e-3), (90, 8, 1e-3)]}
TOOL_CALLS = [0]  # calls of calculator() in this process, both sides' (each side's: the delta over its run)
TINY_RESPONSE_TEMPLATE = {  # trl.chat_template_utils.qwen3_template, spelled with the tiny role tokens
    "defaults": {"role": "assistant"},
    "start_anchor": "<|assistant|>",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|end\|>\s*", "content": "text"},
    },
}


def calculator(expression: str):
    """A+B or A*B.

    Args:
        expression: A+B
    """
    TOOL_CALLS[0] += 1
    return task.calculator(expression)


def shared():
    """This module as ``benchmarks.bench_agent``: the one reinforge's ``{"python": ...}`` tool spec imports
    (under ``python -m`` this file also runs as ``__main__``, a second copy with a counter of its own)."""
    return importlib.import_module("benchmarks.bench_agent")


def tool_schema() -> dict:
    from transformers.utils import get_json_schema

    return get_json_schema(shared().calculator)  # what TRL's apply_chat_template(tools=[fn]) renders


def question_rows(n: int, seed: int = 0) -> list[dict]:
    rows = task.CalculatorTask().make_rows(n, seed=seed)
    return [{**r, "tools": [tool_schema()]} for r in rows]


def sft_model_dir(size: str, cache_dir: Path, stages: list[tuple[int, int, float]] | None = None) -> Path:
    """A tiny model of ``size`` SFT'd on 512 calculator demonstrations in ``stages`` (steps, batch, lr) run one
    after the other, each a cosine schedule of its own; every stage's model is cached, keyed by the stages so far."""
    from transformers import LlamaForCausalLM

    from reinforge.models.tiny import CACHE_VERSION, build_model, build_tokenizer, save_tiny
    from reinforge.train.sft import sft_warmup

    stages = stages or SFT[size]
    tok, path, model = build_tokenizer(), None, None
    for i, (steps, batch, lr) in enumerate(stages):
        key = json.dumps([size, stages[: i + 1], tool_schema(), CACHE_VERSION])
        total = sum(s for s, _, _ in stages[: i + 1])
        done = Path(cache_dir) / f"calculator-{size}-k{total}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
        if (done / "config.json").exists():
            path, model = done, None
            continue
        if model is None:
            model = LlamaForCausalLM.from_pretrained(path) if path else build_model(size, 0, len(tok))
        sft_warmup(model, tok, task.demonstrations(question_rows(512)), steps, batch, lr)
        done.parent.mkdir(parents=True, exist_ok=True)
        path = save_tiny(model, tok, done)
    assert path is not None, "no SFT stages"
    return path


class Side:
    """``counted(k)``: k training steps, their seconds; ``stats``: episodes, the tool calls they executed (counted
    in the tool), model turns, and tokens after the prompt (generated and tool tokens)."""

    def __init__(self):
        self.times: list[float] = []
        self.stats = {"episodes": 0, "tool_calls": 0, "turns": 0.0, "tokens": 0.0}

    def counted(self, k: int) -> list[float]:
        n0, c0 = len(self.times), shared().TOOL_CALLS[0]
        self._run(k)
        self.stats["tool_calls"] += shared().TOOL_CALLS[0] - c0
        return self.times[n0:]

    def _run(self, k: int) -> None:
        raise NotImplementedError

    def per_episode(self) -> dict[str, float]:
        n = max(1, self.stats["episodes"])
        return {k: round(self.stats[k] / n, 2) for k in ("tool_calls", "turns", "tokens")}


class TRLSide(Side):
    """TRL's GRPOTrainer with ``tools=[calculator]`` and ``max_tool_calling_iterations=TURNS - 1``."""

    def __init__(self, model_dir: Path, rows: list[dict], out_dir: Path, group: int, turns: int, budget: int):
        super().__init__()
        from datasets import Dataset
        from transformers import AutoTokenizer, LlamaForCausalLM
        from trl import GRPOConfig, GRPOTrainer

        self.model = LlamaForCausalLM.from_pretrained(model_dir)
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.tok.response_template = TINY_RESPONSE_TEMPLATE  # where TRL's parse_response reads it
        self.ds = Dataset.from_list([{"prompt": r["messages"], "row": json.dumps(r)} for r in rows])

        def reward(completions, completion_ids, row, **kw):
            out = []
            for msgs, ids, r in zip(completions, completion_ids, row):
                said = [m for m in msgs if m["role"] == "assistant"]
                calls = [c for m in said for c in m.get("tool_calls") or []]
                self.stats["episodes"] += 1
                self.stats["turns"] += len(said)
                self.stats["tokens"] += len(ids)
                tools = [{"type": "function", "function": {**c["function"], "arguments": json.dumps(
                    c["function"].get("arguments"))}} for c in calls]  # fmt: skip
                sample = {"output_text": said[-1].get("content") or "" if said else "", "output_tools": tools}
                out.append(task.calculator_reward(json.loads(r), sample))
            return out

        self.cls, self.cb, self.reward = GRPOTrainer, trl_step_timer(self.times), reward
        self.args = lambda k: GRPOConfig(
            output_dir=str(out_dir),
            max_steps=k,
            per_device_train_batch_size=group * len(rows),
            num_generations=group,
            max_completion_length=budget,
            max_tool_calling_iterations=turns - 1,
            learning_rate=LR,
            beta=BETA,
            loss_type="dapo",
            temperature=1.0,
            **TRL_QUIET,
        )

    def prompt_ids(self, row: dict) -> list[int]:
        """The prompt as TRL renders it (tools as callables, through transformers' get_json_schema)."""
        return self.tok.apply_chat_template(
            row["messages"], tools=[shared().calculator], add_generation_prompt=True, return_dict=False
        )

    def _run(self, k: int) -> None:
        tr = self.cls(
            model=self.model,
            reward_funcs=self.reward,
            args=self.args(k),
            train_dataset=self.ds,
            processing_class=self.tok,
            tools=[shared().calculator],
            callbacks=[self.cb],
        )
        tr.train()


class ReinforgeSide(Side):
    """reinforge's GRPO step as ``train_grpo`` runs it: ``StepRollouts`` (episodes, the agent section) ->
    ``grpo_update``."""

    def __init__(self, model_dir: Path, rows: list[dict], out_dir: Path, group: int, turns: int, budget: int):
        super().__init__()
        from reinforge.models.generation import HFBackend
        from reinforge.train.agent import AgentSettings
        from reinforge.train.grpo import GRPOConfig, build_policy
        from reinforge.train.optimizer import adamw
        from reinforge.train.rollout import StepRollouts

        agent = AgentSettings(
            tools=[{"python": "benchmarks.bench_agent:calculator"}],
            max_episode_steps=turns,
            max_tool_calls=8,
            max_episode_tokens=budget,
            on_invalid_call="end",  # as TRL: a call it cannot read is the turn's plain text, the episode ends
        )
        self.cfg = GRPOConfig(
            model=str(model_dir),
            task="calculator",
            output_dir=str(out_dir),
            group_size=group,
            prompts_per_step=len(rows),  # every step: all the rows, as TRL's sampler gives them
            max_new_tokens=budget,  # as TRL: each turn may take the whole budget
            learning_rate=LR,
            beta=BETA,
            loss_type="dapo",
            dtype="float32",
            progress=False,
            agent=agent,
        )
        torch.manual_seed(0)
        self.policy, self.ref, self.tok = build_policy(self.cfg)
        self.opt = adamw(self.policy.parameters(), LR, 0.0)  # the optimizer train_grpo builds
        self.rollouts = StepRollouts(
            HFBackend(self.policy, self.tok), task.CalculatorTask().grader, rows, self.tok, self.cfg
        )
        self.step = 0

    def _run(self, k: int) -> None:
        from reinforge.train.grpo import grpo_update

        for _ in range(k):
            self.step += 1
            t0 = time.perf_counter()
            roll = self.rollouts(self.step, n=self.cfg.group_size)
            grpo_update(self.policy, self.ref, self.opt, roll, self.cfg, step_seed=self.step)
            self.times.append(time.perf_counter() - t0)
            n, a = roll.rewards.numel(), roll.agent
            self.stats["episodes"] += n
            self.stats["turns"] += a["agent/turns_mean"] * n
            self.stats["tokens"] += a["agent/tokens_mean"] * n


def bench(size: str, a: argparse.Namespace) -> dict:
    """One size, both sides; ``a``: main()'s arguments."""
    from reinforge.models.chat import encode_prompt

    rows = question_rows(a.prompts)
    model_dir = sft_model_dir(size, a.cache_dir, a.sft)
    with tempfile.TemporaryDirectory() as tmp:
        limits = (a.group, a.turns, a.max_tokens)
        rf = ReinforgeSide(model_dir, rows, Path(tmp) / "rf", *limits)
        trl = TRLSide(model_dir, rows, Path(tmp) / "trl", *limits)
        for r in rows:  # the same prompt tokens on both sides
            if encode_prompt(rf.tok, r["messages"], tools=r["tools"]) != trl.prompt_ids(r):
                raise AssertionError(f"the sides render {r['messages']} differently")
        rf.counted(1), trl.counted(1)  # warm-up
        trl_times, rf_times = [], []
        for _ in range(a.blocks):
            trl_times += trl.counted(a.steps)
            rf_times += rf.counted(a.steps)
    t_trl, t_rf, n = statistics.median(trl_times), statistics.median(rf_times), a.group * a.prompts
    return {
        "bench": "agent",
        "size": size,
        "params": sum(p.numel() for p in rf.policy.parameters()),
        "threads": torch.get_num_threads(),
        "episodes_per_step": n,
        "max_turns": a.turns,
        "max_tokens": a.max_tokens,
        "steps_each": len(rf_times),
        "trl_step_s": round(t_trl, 3),
        "reinforge_step_s": round(t_rf, 3),
        "trl_completions_per_s": round(n / t_trl, 2),
        "reinforge_completions_per_s": round(n / t_rf, 2),
        "ratio": round(t_trl / t_rf, 2),
        # per episode, over every step each side ran (warm-up included): tool calls executed, model turns,
        # tokens after the prompt (generated and tool tokens)
        "trl_per_episode": trl.per_episode(),
        "reinforge_per_episode": rf.per_episode(),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "trl_step_s_all": [round(x, 3) for x in trl_times],
        "reinforge_step_s_all": [round(x, 3) for x in rf_times],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    from reinforge.models.tiny import cache_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=[*SFT, "all"], default="all")
    ap.add_argument("--steps", type=int, default=2, help="steps per block (each side)")
    ap.add_argument("--blocks", type=int, default=2, help="alternating TRL/reinforge blocks")
    ap.add_argument("--prompts", type=int, default=PROMPTS, help="questions (every step: all of them)")
    ap.add_argument("--group", type=int, default=GROUP, help="episodes per question")
    ap.add_argument(
        "--turns", type=int, default=TURNS, help="model turns per episode (turns - 1 tool rounds)"
    )
    ap.add_argument("--max-tokens", type=int, default=BUDGET, help="tokens after the prompt, tool tokens too")
    ap.add_argument("--cache-dir", type=Path, default=cache_root() / "bench_agent", help="the SFT'd models")
    ap.add_argument(
        "--sft",
        default=None,
        help="the demonstrations' SFT: STEPS,BATCH,LR[;STEPS,BATCH,LR...] (default: SFT)",
    )
    args = ap.parse_args(argv)
    try:
        import trl  # noqa: F401
    except ImportError:
        print(json.dumps({"bench": "agent", "skipped": "trl not installed (pip install trl==1.16.0)"}))
        return []
    if args.sft:
        args.sft = [(int(k), int(b), float(lr)) for k, b, lr in (st.split(",") for st in args.sft.split(";"))]
    results = []
    for size in list(SFT) if args.size == "all" else [args.size]:
        results.append(bench(size, args))
        print(json.dumps(results[-1]), flush=True)
    return results


if __name__ == "__main__":
    main()
