"""The agent demo's base model: the stand-in for a pretrained LLM, built once and shipped with reinforge.

A pretrained model copies text from its context and has seen JSON function calls; a tiny model trained from
scratch has neither, and the calculator's few dozen demonstrations cannot teach both. So the demo starts
from a base warmed up on generic tool use (:mod:`reinforge.tasks.tool_use`: 400 steps of repeating text,
then 1,500 steps of episodes with a ``lookup`` tool; the calculator never appears). Copying forms in sudden
jumps whose timing depends on the seed (benchmarks/README.md, "The agent demo learns"), and the warm-up
takes ~14 minutes on one core (833 s), more than the whole demo may: so it is built here, once, by
``python -m reinforge.demo_agent_base`` (``make agent-base``), and its weights ship in
``reinforge/demo_data/agent-base`` with ``recipe.json``: the recipe, the seconds it took, its final
losses and its copy check. ``reinforge demo agent`` starts from it as users start from Qwen.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from reinforge.errors import ReinforgeError
from reinforge.graders.base import CallableGrader
from reinforge.models.chat import render_prompt
from reinforge.models.generation import HFBackend
from reinforge.models.tiny import build_bpe_tokenizer, build_model, build_tokenizer, save_tiny
from reinforge.tasks.calculator import CalculatorTask, call_arguments, demonstrations
from reinforge.tasks.tool_use import echo_rows, lookup_episodes
from reinforge.train.agent import AgentRunner, AgentSettings
from reinforge.train.evaluate import evaluate
from reinforge.train.progress import TrainProgress
from reinforge.train.sft import sft_warmup
from reinforge.train.warmup import load_model

BASE_DIR = Path(__file__).parent / "demo_data" / "agent-base"
RECIPE: dict[str, Any] = dict(
    size="1m",
    seed=0,
    vocab_size=300,  # the BPE tokenizer's, trained on the warm-up's text and the calculator's demonstrations
    echo_rows=2000,  # stage 1: strings to repeat (copying forms here, then carries over to tool calls)
    echo_steps=400,
    lookup_rows=4000,  # stage 2: whole episodes with the generic lookup tool
    lookup_steps=1500,
    batch_size=32,
    lr=3e-3,
)
QUICK = dict(echo_rows=64, echo_steps=10, lookup_rows=64, lookup_steps=10)


def demo_tokenizer(rows: list[dict], vocab_size: int):
    """A BPE tokenizer trained on ``rows`` as the tiny chat template renders them."""
    chars = build_tokenizer()  # the same chat template: it renders the text the BPE is trained on
    texts = [
        render_prompt(chars, r["messages"], add_generation_prompt=False, tools=r.get("tools")) for r in rows
    ]
    return build_bpe_tokenizer(texts, vocab_size)


def sft(model, tok, rows: list[dict], steps: int, batch: int, seed: int, label: str, lr: float = 3e-3):
    """SFT ``model`` in place on chat ``rows`` (with their ``tools``), with a progress bar; the loss curve."""
    with TrainProgress(steps, 0, label) as bar:
        return sft_warmup(model, tok, rows, steps=steps, batch_size=batch, seed=seed, lr=lr,
                          on_step=lambda done, loss: bar.update(done, {"loss": loss}))  # fmt: skip


def copy_check(model, tok, n: int = 64, seed: int = 10_000) -> dict[str, float]:
    """On held-out lookup episodes: the share of calls whose key is the question, exactly, and of final
    answers that repeat the tool's answer, exactly (greedy)."""
    episodes = lookup_episodes(n, seed)

    def called(item: dict, sample: dict) -> float:
        want = item["messages"][0]["content"]
        return float(any(call_arguments(c).get("key") == want for c in sample.get("output_tools") or []))

    def answered(item: dict, sample: dict) -> float:
        return float(sample.get("output_text", "").strip() == item["messages"][2]["content"])

    backend, parse_only = HFBackend(model, tok), AgentRunner(AgentSettings(), 48)
    calls = [{**e, "messages": e["messages"][:1]} for e in episodes]
    answers = [{**e, "messages": e["messages"][:3]} for e in episodes]
    return {
        "calls": evaluate(backend, tok, CallableGrader(called), calls, 48, agent=parse_only)["reward_mean"],
        "answers": evaluate(backend, tok, CallableGrader(answered), answers, 24)["reward_mean"],
    }


def build_base(out: Path = BASE_DIR, quick: bool = False, seed: int | None = None) -> Path:
    """Train the base (tokenizer, then the two warm-up stages) and save it with ``recipe.json``."""
    recipe = {**RECIPE, **(QUICK if quick else {}), **({} if seed is None else {"seed": seed})}
    t0, s = time.time(), recipe["seed"]
    torch.manual_seed(s)
    echo, lookup = echo_rows(recipe["echo_rows"], s + 2), lookup_episodes(recipe["lookup_rows"], s + 3)
    calculator = demonstrations(CalculatorTask().make_rows(48, seed=s + 1, split="train"))
    tok = demo_tokenizer(echo + lookup + calculator, recipe["vocab_size"])
    model = build_model(recipe["size"], s, len(tok))
    b, lr = recipe["batch_size"], recipe["lr"]
    losses = {
        "echo": sft(model, tok, echo, recipe["echo_steps"], b, s, "base: repeat text", lr),
        "lookup": sft(model, tok, lookup, recipe["lookup_steps"], b, s, "base: lookup tool", lr),
    }
    save_tiny(model, tok, out)
    manifest = {
        "recipe": recipe,
        "seconds": round(time.time() - t0, 1),
        "final_loss": {k: round(sum(v[-50:]) / len(v[-50:]), 4) for k, v in losses.items()},
        "copy_check": copy_check(model, tok),
        "torch": torch.__version__,
        "sha256": weights_sha256(out),
    }
    (out / "recipe.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def weights_sha256(path: Path) -> str:
    return hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()


def load_base(base: Path | None, quick: bool, scratch: Path):
    """(model, tokenizer, directory) of ``base``, else of the shipped base; ``quick`` (the tests): a base
    built in seconds at ``scratch``, so the recipe's code runs too."""
    if base is None:
        base = build_base(scratch, quick=True) if quick else BASE_DIR
    base = base_dir(Path(base))
    model, tok = load_model(str(base), trainable=True)
    return model, tok, base


def base_dir(path: Path = BASE_DIR) -> Path:
    """The shipped base (or ``path``), checked against its recipe's hash."""
    manifest = path / "recipe.json"
    if not manifest.exists():
        raise ReinforgeError(f"{path}: the agent demo's base is missing; build it: make agent-base")
    if json.loads(manifest.read_text())["sha256"] != weights_sha256(path):
        raise ReinforgeError(
            f"{path}/model.safetensors: not the weights its recipe.json names; rebuild it: make agent-base"
        )
    return path


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Build the agent demo's base model (~14 minutes on one core).")
    p.add_argument("--out", type=Path, default=BASE_DIR)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    path = build_base(a.out, seed=a.seed)
    print(json.loads((path / "recipe.json").read_text()))
