"""GRPO step speed: reinforge vs TRL's GRPOTrainer, side by side in one process, on identical settings.

One random-init Llama (the anchor's configs, untied embeddings), a character tokenizer, 2-digit addition
prompts, 64 completions per step (8 prompts x 8), 16 new tokens, beta 0.04, fp32, lr 1e-4. Both sides load the
same random weights, so they sample EOS at the same rate and their completions have the same length
distribution (mean ~10-12 of at most 16 tokens): equal work in expectation.

Both run in blocks that alternate (TRL, reinforge, TRL, reinforge, ...) so that load from other processes on
a shared machine hits both alike; the reported figure is the median step time after a warm-up step.

    python -m benchmarks.bench_grpo --size tiny --steps 6
    python -m benchmarks.bench_grpo --update-forwards padded,grouped,packed   # the update alone, no TRL
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

SIZES = {"tiny": (128, 4, 4), "small": (384, 6, 6)}  # hidden, layers, heads (intermediate = 3 * hidden)
GROUP, PROMPTS, NEW_TOKENS, BETA, LR = 8, 8, 16, 0.04, 1e-4


def build_model_dir(size: str, out: Path) -> Path:
    """The anchor's model and tokenizer, saved to ``out`` (seed 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for c in "0123456789+=- ":
        vocab[c] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tok.padding_side = "left"
    h, layers, heads = SIZES[size]
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=h,
        intermediate_size=3 * h,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def addition_rows(n: int = 512) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        rows.append({"prompt": f"{a}+{b}=", "answer": str(a + b)})
    return rows


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured fp32 matmul rate (GFLOP/s, best of ``repeats``) of this machine, right now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def step_flops(n_params: int, prompt_len: int, n_seqs: int, new_tokens: int, beta: float) -> dict[str, float]:
    """Matmul FLOPs of one GRPO step (2N per token forward, 6N forward+backward; attention ignored)."""
    decode = 2 * n_params * n_seqs * new_tokens
    seq_tokens = n_seqs * (prompt_len + new_tokens)
    ref = 2 * n_params * seq_tokens if beta > 0 else 0.0
    update = 6 * n_params * seq_tokens
    return {"decode": decode, "ref": ref, "update": update, "total": decode + ref + update}


# TRL's GRPOConfig settings that keep a timed run to its steps: no logging, saving, progress bar or loader workers
TRL_QUIET = dict(
    logging_steps=1000,
    report_to=[],
    save_strategy="no",
    use_cpu=not torch.cuda.is_available(),
    bf16=False,
    disable_tqdm=True,
    dataloader_num_workers=0,
)


def trl_step_timer(times: list[float]):
    """A TrainerCallback that appends each training step's seconds (rollout, scoring and update) to ``times``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    return StepTimer()


class TRLSide:
    """TRL's GRPOTrainer, as in the anchor script; ``run(k)`` trains k steps and returns their seconds."""

    def __init__(self, model_dir: Path, rows: list[dict], out_dir: Path):
        from datasets import Dataset
        from transformers import AutoTokenizer, LlamaForCausalLM
        from trl import GRPOConfig as TRLConfig
        from trl import GRPOTrainer

        self.model = LlamaForCausalLM.from_pretrained(model_dir)
        tok = AutoTokenizer.from_pretrained(model_dir)
        tok.padding_side = "left"

        def reward(completions, answer, **kw):
            return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer)]

        self.times: list[float] = []
        self.args_kw = dict(
            output_dir=str(out_dir),
            per_device_train_batch_size=GROUP * PROMPTS,
            num_generations=GROUP,
            max_completion_length=NEW_TOKENS,
            learning_rate=LR,
            beta=BETA,
            temperature=1.0,
            **TRL_QUIET,
        )
        self._cfg, self._trainer_cls, self._cb = TRLConfig, GRPOTrainer, trl_step_timer(self.times)
        self.ds, self.tok, self.reward = Dataset.from_list(rows), tok, reward

    def run(self, k: int) -> list[float]:
        args = self._cfg(max_steps=k, **self.args_kw)
        tr = self._trainer_cls(
            model=self.model,
            reward_funcs=self.reward,
            args=args,
            train_dataset=self.ds,
            processing_class=self.tok,
            callbacks=[self._cb],
        )
        n0 = len(self.times)
        tr.train()
        return self.times[n0:]


class ReinforgeSide:
    """reinforge's GRPO step, exactly as ``train_grpo`` runs it: rollout -> grade -> ``grpo_update``."""

    def __init__(self, model_dir: Path, rows: list[dict], out_dir: Path, compile_decode: bool = False):
        from reinforge.graders import as_grader
        from reinforge.models.generation import HFBackend
        from reinforge.train.grpo import GRPOConfig, build_policy
        from reinforge.train.optimizer import adamw

        self.cfg = GRPOConfig(
            model=str(model_dir),
            task="addition",
            output_dir=str(out_dir),
            group_size=GROUP,
            prompts_per_step=PROMPTS,
            max_new_tokens=NEW_TOKENS,
            learning_rate=LR,
            beta=BETA,
            dtype="float32",
            progress=False,
        )
        torch.manual_seed(0)
        self.policy, self.ref, self.tok = build_policy(self.cfg)
        self.opt = adamw(self.policy.parameters(), LR, 0.0)  # the optimizer train_grpo builds
        self.backend = HFBackend(self.policy, self.tok, compile_decode=compile_decode)
        self.grader = as_grader(lambda item, sample: float(sample["output_text"].strip() == item["answer"]))
        self.rows = rows
        # the same raw prompt text TRL tokenizes (this tokenizer adds no special tokens)
        self.prompt_ids = [self.tok(r["prompt"])["input_ids"] for r in rows]
        self.step = 0
        self.times: list[float] = []
        self.update_seconds: list[float] = []
        self.update_tokens: list[int] = []

    def run(self, k: int) -> list[float]:
        from reinforge.models.generation import SamplingParams
        from reinforge.models.packed import PackedBatch
        from reinforge.train.batching import batch_indices
        from reinforge.train.grpo import grpo_update
        from reinforge.train.rollout import collect_rollout

        out = []
        for _ in range(k):
            self.step += 1
            t0 = time.perf_counter()
            idx = batch_indices(self.step, PROMPTS, len(self.rows), 0)
            sp = SamplingParams(max_tokens=NEW_TOKENS, n=GROUP, seed=self.step)
            roll = collect_rollout(
                self.backend,
                self.grader,
                [self.rows[i] for i in idx],
                [self.prompt_ids[i] for i in idx],
                sp,
                self.backend.pad_id,
            )
            t1 = time.perf_counter()
            grpo_update(self.policy, self.ref, self.opt, roll, self.cfg, step_seed=self.step)
            t2 = time.perf_counter()
            out.append(t2 - t0)
            self.update_seconds.append(t2 - t1)
            self.last_completion_tokens = int(roll.completion_mask.sum())
            # tokens the packed update actually runs (each distinct prompt once, each completion but its
            # last token): the layout the update built, rebuilt here outside the timing
            layout = PackedBatch.build(
                roll.input_ids,
                roll.attention_mask,
                roll.completion_mask,
                torch.arange(GROUP * PROMPTS) // GROUP,
            )
            self.update_tokens.append(layout.ids.numel())
        self.times += out
        return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(size: str, steps: int, blocks: int, compiled: bool = True) -> dict:
    rows = addition_rows()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model_dir(size, Path(tmp) / "model")
        rf = ReinforgeSide(model_dir, rows, Path(tmp) / "rf")
        rss_after_rf_load = peak_rss_mib()
        rf.run(1)  # warm-up
        rss_rf = peak_rss_mib()
        # the same step with `compile_decode: true` (its own copy of the weights); its warm-up step compiles
        rfc = ReinforgeSide(model_dir, rows, Path(tmp) / "rfc", compile_decode=True) if compiled else None
        t0 = time.perf_counter()
        if rfc:
            rfc.run(1)
        compile_warmup_s = time.perf_counter() - t0
        trl = TRLSide(model_dir, rows, Path(tmp) / "trl")
        trl.run(1)  # warm-up
        rss_trl = peak_rss_mib()
        trl_times, rf_times, rfc_times = [], [], []
        for _ in range(blocks):
            trl_times += trl.run(steps)
            rf_times += rf.run(steps)
            if rfc:
                rfc_times += rfc.run(steps)
        gflops_rate = matmul_gflops()
    n_params = sum(p.numel() for p in rf.policy.parameters())
    prompt_len = max(len(p) for p in rf.prompt_ids)
    flops = step_flops(n_params, prompt_len, GROUP * PROMPTS, NEW_TOKENS, BETA)
    t_trl, t_rf = statistics.median(trl_times), statistics.median(rf_times)
    t_upd = statistics.median(rf.update_seconds[1:])
    n = GROUP * PROMPTS
    return {
        "bench": "grpo",
        "size": size,
        "params": n_params,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "completions_per_step": n,
        "new_tokens": NEW_TOKENS,
        "steps_each": len(rf_times),
        "trl_step_s": round(t_trl, 4),
        "reinforge_step_s": round(t_rf, 4),
        "trl_completions_per_s": round(n / t_trl, 1),
        "reinforge_completions_per_s": round(n / t_rf, 1),
        "ratio": round(t_trl / t_rf, 2),
        "reinforge_update_s": round(t_upd, 4),
        # nominal: the FLOPs of full padded rows (P + 16 tokens each), as the issue counts them
        "reinforge_update_gflops_per_s": round((flops["ref"] + flops["update"]) / t_upd / 1e9, 1),
        # executed: the FLOPs of the tokens the packed update really runs (8N per token: 2N ref + 6N policy)
        "reinforge_update_executed_gflops_per_s": round(
            8 * n_params * statistics.median(rf.update_tokens[1:]) / t_upd / 1e9, 1
        ),
        "update_tokens_executed_vs_nominal": round(
            statistics.median(rf.update_tokens[1:]) / (n * (prompt_len + NEW_TOKENS)), 2
        ),
        "reinforge_step_gflops_per_s": round(flops["total"] / t_rf / 1e9, 1),
        "matmul_gflops_per_s": round(gflops_rate, 1),
        "flop_floor_completions_per_s": round(n / (flops["total"] / (gflops_rate * 1e9)), 1),
        **(
            {
                "reinforge_compiled_completions_per_s": round(n / statistics.median(rfc_times), 1),
                "ratio_compiled": round(t_trl / statistics.median(rfc_times), 2),
                "compile_warmup_step_s": round(compile_warmup_s, 1),
                "reinforge_compiled_step_s_all": [round(x, 4) for x in rfc_times],
            }
            if rfc_times
            else {}
        ),
        "peak_rss_mib_reinforge": round(rss_rf, 1),
        "peak_rss_mib_after_trl": round(rss_trl, 1),
        "rss_mib_after_model_load": round(rss_after_rf_load, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "trl_step_s_all": [round(x, 4) for x in trl_times],
        "reinforge_step_s_all": [round(x, 4) for x in rf_times],
    }


def bench_update(size: str, forwards: list[str], rollouts: int = 3, repeats: int = 3) -> dict:
    """reinforge's ``grpo_update`` alone on the same fixed rollouts, for each log-prob forward: ``padded``,
    ``grouped`` (``grouped:k`` for k length buckets) or ``packed`` (the default)."""
    from reinforge.models.generation import SamplingParams
    from reinforge.train.batching import batch_indices
    from reinforge.train.grpo import grpo_update
    from reinforge.train.rollout import collect_rollout

    rows = addition_rows()
    with tempfile.TemporaryDirectory() as tmp:
        rf = ReinforgeSide(build_model_dir(size, Path(tmp) / "model"), rows, Path(tmp) / "rf")
        rolls = []
        for step in range(1, rollouts + 1):
            idx = batch_indices(step, PROMPTS, len(rows), 0)
            sp = SamplingParams(max_tokens=NEW_TOKENS, n=GROUP, seed=step)
            picked, prompts = [rows[i] for i in idx], [rf.prompt_ids[i] for i in idx]
            rolls.append(collect_rollout(rf.backend, rf.grader, picked, prompts, sp, rf.backend.pad_id))
        best: dict[str, float] = {}
        for _ in range(repeats):  # settings interleaved, so machine load hits each alike
            for spec in forwards:
                name, _, k = spec.partition(":")
                rf.cfg.logprob_forward, rf.cfg.logprob_buckets = name, int(k or 1)
                times = []
                for r in rolls:
                    t0 = time.perf_counter()
                    grpo_update(rf.policy, rf.ref, rf.opt, r, rf.cfg, step_seed=1)
                    times.append(time.perf_counter() - t0)
                best[spec] = min(best.get(spec, float("inf")), statistics.median(times))
    return {
        "bench": "grpo_update",
        "size": size,
        "mean_completion_tokens": round(
            sum(float(r.completion_mask.sum()) for r in rolls) / len(rolls) / (GROUP * PROMPTS), 2
        ),
        "update_s_by_forward": {k: round(v, 4) for k, v in best.items()},
    }


def print_table(results: list[dict]) -> None:
    cols = [
        ("size", "size"),
        ("params", "params"),
        ("trl c/s", "trl_completions_per_s"),
        ("reinforge c/s", "reinforge_completions_per_s"),
        ("ratio", "ratio"),
        ("compile_decode c/s", "reinforge_compiled_completions_per_s"),
        ("ratio compiled", "ratio_compiled"),
        ("upd GFLOP/s nominal", "reinforge_update_gflops_per_s"),
        ("upd GFLOP/s executed", "reinforge_update_executed_gflops_per_s"),
        ("floor c/s", "flop_floor_completions_per_s"),
        ("matmul GFLOP/s", "matmul_gflops_per_s"),
        ("RSS MiB", "peak_rss_mib_after_trl"),
        ("load", "loadavg_1m"),
    ]
    print(" | ".join(c for c, _ in cols))
    for r in results:
        print(" | ".join(str(r.get(k, "-")) for _, k in cols))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=[*SIZES, "all"], default="all")
    ap.add_argument("--steps", type=int, default=3, help="steps per block (each side)")
    ap.add_argument("--blocks", type=int, default=3, help="alternating TRL/reinforge blocks")
    ap.add_argument(
        "--no-compiled",
        action="store_true",
        help="skip the `compile_decode: true` side (saves its ~11 s compile)",
    )
    ap.add_argument(
        "--update-forwards",
        default=None,
        help="time only reinforge's update with these log-prob forwards, e.g. padded,grouped,grouped:2,packed (no TRL)",
    )
    args = ap.parse_args(argv)
    if args.update_forwards:
        specs = args.update_forwards.split(",")
        out = [bench_update(size, specs) for size in (list(SIZES) if args.size == "all" else [args.size])]
        for r in out:
            print(json.dumps(r), flush=True)
        return out
    try:
        import trl  # noqa: F401
    except ImportError:
        print(json.dumps({"bench": "grpo", "skipped": "trl not installed (pip install trl==1.16.0)"}))
        return []
    sizes = list(SIZES) if args.size == "all" else [args.size]
    results = []
    for size in sizes:
        res = bench(size, args.steps, args.blocks, compiled=not args.no_compiled)
        print(json.dumps(res), flush=True)
        results.append(res)
    print_table(results)
    return results


if __name__ == "__main__":
    main()
