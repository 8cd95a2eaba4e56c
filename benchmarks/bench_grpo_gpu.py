"""GRPO step speed on one GPU: reinforge vs TRL (HF generate, no vLLM), Qwen2.5-0.5B architecture.

Random bf16 weights built locally (no hub), 256 completions per step (32 prompts x 8), 64-token prompts,
256 new tokens at a fixed length on both sides (TRL: ``min_new_tokens``; reinforge: no EOS id), beta 0.04,
microbatches of 32 completions with gradients accumulated into one optimizer step on both sides (TRL:
``per_device_train_batch_size=32, gradient_accumulation_steps=8``; reinforge: ``micro_batch_size=32``),
as in the anchor script ``shared/anchors/trl_grpo_gpu.py``. Both sides run in the same process on the
same weights and prompts, one after the other; the first step of each is a warm-up and not counted.
Needs CUDA; prints a JSON line per side and one with the ratio. ``--smoke`` runs the same code with a
tiny Qwen2 on whatever device there is (the CPU here): the test suite runs it, so the script a GPU session
spends its few minutes on does not crash on the way there.

    python -m benchmarks.bench_grpo_gpu --steps 3
    python -m benchmarks.bench_grpo_gpu --smoke --sides reinforge,reinforge_packed,trl
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Setup:
    """The benchmark's model shape and batch: the issue's GPU configuration, or a tiny one (``--smoke``)."""

    vocab: int = 151936
    hidden: int = 896
    intermediate: int = 4864
    layers: int = 24
    heads: int = 14
    kv_heads: int = 2
    prompts: int = 32  # per step, ``group`` completions each
    group: int = 8
    prompt_len: int = 64
    new_tokens: int = 256
    micro: int = 32  # completions per forward; gradients accumulate over the step's batch
    dtype: str = "bfloat16"

    @property
    def device(self) -> str:
        return "cuda" if torch.cuda.is_available() else "cpu"


QWEN_05B = Setup()
SMOKE = Setup(
    vocab=4100,
    hidden=32,
    intermediate=64,
    layers=2,
    heads=4,
    kv_heads=2,
    prompts=4,
    group=4,
    prompt_len=6,
    new_tokens=5,
    micro=8,
    dtype="float32",
)  # fmt: skip  (vocab >= 4096: the LM head recomputes its logits, as Qwen's does)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_mem_gib(device: str) -> float:
    """Peak allocated GPU memory; on CPU, the process's peak RSS."""
    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**30, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1)


def build_model_dir(out: Path, su: Setup) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i for i in range(3, su.vocab)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tok.padding_side = "left"
    cfg = Qwen2Config(
        vocab_size=su.vocab,
        hidden_size=su.hidden,
        intermediate_size=su.intermediate,
        num_hidden_layers=su.layers,
        num_attention_heads=su.heads,
        num_key_value_heads=su.kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).to(getattr(torch, su.dtype)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def reinforge_side(model_dir: Path, rows: list[dict], su: Setup):
    """reinforge's GRPO pieces with the benchmark's settings: config, policy, reference, tokenizer,
    optimizer, a random-reward grader and the tokenized prompts."""
    from transformers import PreTrainedTokenizerFast

    from reinforge.graders import as_grader
    from reinforge.train.grpo import GRPOConfig, build_policy
    from reinforge.train.optimizer import adamw

    cfg = GRPOConfig(
        model=str(model_dir),
        task="addition",
        group_size=su.group,
        prompts_per_step=su.prompts,
        max_new_tokens=su.new_tokens,
        learning_rate=1e-6,
        beta=0.04,
        dtype=su.dtype,
        device=su.device,
        logprob_chunk=8,
        micro_batch_size=su.micro,
        progress=False,
    )
    policy, ref, _ = build_policy(cfg)
    # AutoTokenizer maps a qwen2 config to Qwen2Tokenizer, which drops this word-level tokenizer.json
    tok = PreTrainedTokenizerFast.from_pretrained(model_dir)
    opt = adamw(policy.parameters(), cfg.learning_rate)  # the optimizer train_grpo builds (fused AdamW)
    grader = as_grader(lambda item, sample: random.random())
    prompt_ids = [tok(r["prompt"])["input_ids"] for r in rows]
    return cfg, policy, ref, tok, opt, grader, prompt_ids


# reinforge's sides: what each changes from the defaults
REINFORGE_SIDES = {
    "reinforge": {},
    "reinforge_no_graphs": {"cuda_graphs": False},  # decode eagerly
    "reinforge_packed": {"logprob_forward": "packed"},  # the padding-free update forward
    # the LM head's logits kept for the backward pass instead of recomputed (ChosenTokenLogps): more memory,
    # one head matmul less per forward
    "reinforge_keep_logits": {"keep_logits": True},
}


@contextlib.contextmanager
def lm_head_logits_kept(keep: bool, vocab: int):
    """With ``keep``, the LM head's logits are kept for the backward pass rather than recomputed, for this
    vocabulary size, until the block ends."""
    from reinforge.train import logprobs

    recompute_from = logprobs.RECOMPUTE_MIN_VOCAB
    if keep:
        logprobs.RECOMPUTE_MIN_VOCAB = vocab + 1
    try:
        yield
    finally:
        logprobs.RECOMPUTE_MIN_VOCAB = recompute_from


def run_reinforge(model_dir: Path, rows: list[dict], steps: int, su: Setup, side: str = "reinforge") -> dict:
    from reinforge.models.generation import HFBackend, SamplingParams
    from reinforge.train import logprobs
    from reinforge.train.grpo import grpo_update
    from reinforge.train.rollout import collect_rollout

    opts = REINFORGE_SIDES[side]
    cuda_graphs = opts.get("cuda_graphs", True)
    cfg, policy, ref, tok, opt, grader, prompt_ids = reinforge_side(model_dir, rows, su)
    cfg.logprob_forward = opts.get("logprob_forward", "auto")
    P, G, T = su.prompts, su.group, su.new_tokens
    n_params = sum(p.numel() for p in policy.parameters())
    errors = []
    # the static-cache decoder (with CUDA graphs when asked) first; fall back if it fails here
    tries = [(True, cuda_graphs)] + ([(True, False)] if cuda_graphs else []) + [(False, False)]
    for fast, graphs in tries:
        # eos -1: never stops early, a fixed length as TRL's min_new_tokens
        backend = HFBackend(policy, tok, eos_token_ids=[-1], fast=fast, cuda_graphs=graphs)
        times, gen_s, upd_s = [], [], []
        try:
            for step in range(steps + 1):
                sync(su.device)
                t0 = time.perf_counter()
                batch = slice(step * P, (step + 1) * P)
                sp = SamplingParams(max_tokens=T, n=G, seed=step)
                roll = collect_rollout(backend, grader, rows[batch], prompt_ids[batch], sp, backend.pad_id)
                sync(su.device)
                t1 = time.perf_counter()
                grpo_update(policy, ref, opt, roll, cfg, step_seed=step)
                sync(su.device)
                if step:  # step 0 is the warm-up
                    times.append(time.perf_counter() - t0)
                    gen_s.append(roll.gen_seconds)
                    upd_s.append(time.perf_counter() - t1)
            break
        except Exception as e:
            errors.append(f"fast={fast} graphs={graphs}: {type(e).__name__}: {e}"[:400])
            opt.zero_grad(set_to_none=True)
            if su.device == "cuda":
                torch.cuda.empty_cache()
    if not times:
        raise RuntimeError("; ".join(errors))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    sec, g, u = med(times), med(gen_s), med(upd_s)
    tokens = P * G * (su.prompt_len + T)
    return {
        "side": side,
        "lm_head_logits": "recomputed" if su.vocab >= logprobs.RECOMPUTE_MIN_VOCAB else "kept",
        # graphs are captured on CUDA only: elsewhere the same request decodes eagerly
        "decoder": ("static_cache" + ("+cuda_graphs" if graphs and su.device == "cuda" else ""))
        if fast
        else "hf",
        "errors": errors,
        "step_s": round(sec, 2),
        "step_s_all": [round(t, 2) for t in times],
        "gen_s": round(g, 2),
        "update_s": round(u, 2),
        "completions_per_s": round(P * G / sec, 1),
        # utilisation: the update's matmul rate (2N reference + 6N policy FLOPs per token), and the
        # weight bytes read per decode step (bf16) per second of generation, a floor on bandwidth used
        "update_tflops_per_s": round(8 * n_params * tokens / u / 1e12, 1),
        "decode_weight_gb_per_s": round(2 * n_params * T / g / 1e9, 1),
        "params": n_params,
        "peak_mem_gib": peak_mem_gib(su.device),
    }


def profile_reinforge(model_dir: Path, rows: list[dict], su: Setup) -> None:
    """Where a reinforge step's GPU time goes: top kernels of generation and of the update, one step each
    after a warm-up step (``--profile``)."""
    from torch.profiler import ProfilerActivity, profile

    from reinforge.models.generation import HFBackend, SamplingParams
    from reinforge.train.grpo import grpo_update
    from reinforge.train.rollout import collect_rollout

    cfg, policy, ref, tok, opt, grader, prompt_ids = reinforge_side(model_dir, rows, su)
    backend = HFBackend(policy, tok, eos_token_ids=[-1])
    for step in range(2):
        batch = slice(step * su.prompts, (step + 1) * su.prompts)
        sp = SamplingParams(max_tokens=su.new_tokens, n=su.group, seed=step)
        for phase in ("generation", "update"):
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                if phase == "generation":
                    roll = collect_rollout(
                        backend, grader, rows[batch], prompt_ids[batch], sp, backend.pad_id
                    )
                else:
                    grpo_update(policy, ref, opt, roll, cfg, step_seed=step)
                sync(su.device)
            if step:  # the first step is the warm-up
                print(f"# profile: {phase}", flush=True)
                print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25), flush=True)


def run_trl(model_dir: Path, rows: list[dict], steps: int, su: Setup) -> dict:
    """TRL's GRPOTrainer with the anchor's settings; step time = time between optimizer-step ends."""
    import trl
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast, TrainerCallback

    ends: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            sync(su.device)
            ends.append(time.perf_counter())

    tok = PreTrainedTokenizerFast.from_pretrained(model_dir)  # as the anchor: this object, not AutoTokenizer
    tok.padding_side = "left"
    args = trl.GRPOConfig(
        output_dir=str(model_dir.parent / "trl-out"),
        per_device_train_batch_size=su.micro,
        gradient_accumulation_steps=su.prompts * su.group // su.micro,
        num_generations=su.group,
        max_completion_length=su.new_tokens,
        max_steps=steps + 1,
        learning_rate=1e-6,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        bf16=su.dtype == "bfloat16",
        use_cpu=su.device == "cpu",
        beta=0.04,
        temperature=1.0,
        disable_tqdm=True,
        gradient_checkpointing=False,
        generation_kwargs={"min_new_tokens": su.new_tokens},
    )
    trainer = trl.GRPOTrainer(
        model=str(model_dir),
        reward_funcs=lambda completions, **kw: [random.random() for _ in completions],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[Timer()],
    )
    if su.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    times = [b - a for a, b in zip(ends, ends[1:])]  # the first step (warm-up) has no start mark
    sec = sorted(times)[len(times) // 2]
    out = {
        "side": "trl",
        "trl_version": trl.__version__,
        "step_s": round(sec, 2),
        "step_s_all": [round(t, 2) for t in times],
        "completions_per_s": round(su.prompts * su.group / sec, 1),
        "peak_mem_gib": peak_mem_gib(su.device),
    }
    del trainer
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument(
        "--sides",
        default="reinforge,trl",
        help=f"comma-separated, of: {', '.join(REINFORGE_SIDES)}, trl",
    )
    ap.add_argument("--profile", action="store_true", help="profile one reinforge step instead of timing")
    ap.add_argument(
        "--smoke", action="store_true", help="a tiny Qwen2, on CUDA or the CPU: checks the script"
    )
    args = ap.parse_args(argv)
    su = SMOKE if args.smoke else QWEN_05B
    unknown = [x for x in args.sides.split(",") if x not in (*REINFORGE_SIDES, "trl")]
    if unknown:
        ap.error(f"--sides: unknown {', '.join(unknown)} (known: {', '.join(REINFORGE_SIDES)}, trl)")
    if su.device != "cuda" and not args.smoke:
        print(json.dumps({"bench": "grpo_gpu", "skipped": "no CUDA device"}))
        return []
    rng = random.Random(0)
    rows = [
        {"prompt": " ".join(f"t{rng.randint(3, su.vocab - 1)}" for _ in range(su.prompt_len))}
        for _ in range(su.prompts * (args.steps + 1))
    ]
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            profile_reinforge(build_model_dir(Path(tmp) / "m", su), rows, su)
        return []
    res = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model_dir(Path(tmp) / "m", su)
        for side in args.sides.split(","):
            if su.device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            try:
                if side == "trl":
                    r = run_trl(model_dir, rows, args.steps, su)
                else:
                    with lm_head_logits_kept(REINFORGE_SIDES[side].get("keep_logits", False), su.vocab):
                        r = run_reinforge(model_dir, rows, args.steps, su, side)
            except Exception as e:  # report and go on to the other side
                r = {"side": side, "error": f"{type(e).__name__}: {e}"[:500]}
            r["device"] = torch.cuda.get_device_name() if su.device == "cuda" else "cpu"
            print(
                json.dumps({"bench": "grpo_gpu", **({"smoke": True} if args.smoke else {}), **r}), flush=True
            )
            res.append(r)
            gc.collect()
    by = {r["side"]: r for r in res}
    if "completions_per_s" in by.get("reinforge", {}) and "completions_per_s" in by.get("trl", {}):
        ratio = by["reinforge"]["completions_per_s"] / by["trl"]["completions_per_s"]
        print(json.dumps({"bench": "grpo_gpu", "ratio_reinforge_over_trl": round(ratio, 2)}), flush=True)
    return res


if __name__ == "__main__":
    main()
