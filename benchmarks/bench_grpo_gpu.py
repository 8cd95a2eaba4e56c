"""GRPO step speed on one GPU: reinforge vs TRL (HF generate, no vLLM), Qwen2.5-0.5B architecture.

Random bf16 weights built locally (no hub), 256 completions per step (32 prompts x 8), 64-token prompts,
256 new tokens at a fixed length on both sides (TRL: ``min_new_tokens``; reinforge: no EOS id), beta 0.04.
Needs CUDA; prints a JSON line per side. Not part of the test suite.

    python -m benchmarks.bench_grpo_gpu --steps 4
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

V, PROMPTS, GROUP, PROMPT_LEN, NEW_TOKENS = 151936, 32, 8, 64, 256


def build_model_dir(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i for i in range(3, V)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tok.padding_side = "left"
    cfg = Qwen2Config(
        vocab_size=V,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def run_reinforge(model_dir: Path, rows: list[dict], steps: int) -> dict:
    from reinforge.graders import as_grader
    from reinforge.models.generation import HFBackend, SamplingParams
    from reinforge.train.grpo import GRPOConfig, build_policy, grpo_update
    from reinforge.train.rollout import collect_rollout

    cfg = GRPOConfig(
        model=str(model_dir),
        task="addition",
        group_size=GROUP,
        prompts_per_step=PROMPTS,
        max_new_tokens=NEW_TOKENS,
        learning_rate=1e-6,
        beta=0.04,
        dtype="bfloat16",
        device="cuda",
        logprob_chunk=8,
        progress=False,
    )
    policy, ref, tok = build_policy(cfg)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.learning_rate)
    backend = HFBackend(
        policy, tok, eos_token_ids=[-1]
    )  # never stops early: fixed length, as TRL's min_new_tokens
    grader = as_grader(lambda item, sample: random.random())
    prompt_ids = [tok(r["prompt"])["input_ids"] for r in rows]
    times, gen_s = [], []
    for step in range(steps + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        batch = slice(step * PROMPTS, (step + 1) * PROMPTS)
        sp = SamplingParams(1.0, 1.0, NEW_TOKENS, GROUP, seed=step)
        roll = collect_rollout(backend, grader, rows[batch], prompt_ids[batch], sp, backend.pad_id)
        grpo_update(policy, ref, opt, roll, cfg, step_seed=step)
        torch.cuda.synchronize()
        if step:  # step 0 is the warm-up
            times.append(time.perf_counter() - t0)
            gen_s.append(roll.gen_seconds)
    sec = sorted(times)[len(times) // 2]
    return {
        "side": "reinforge",
        "step_s": round(sec, 2),
        "gen_s": round(sorted(gen_s)[len(gen_s) // 2], 2),
        "completions_per_s": round(PROMPTS * GROUP / sec, 1),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"bench": "grpo_gpu", "skipped": "no CUDA device"}))
        return []
    rng = random.Random(0)
    rows = [
        {"prompt": " ".join(f"t{rng.randint(3, V - 1)}" for _ in range(PROMPT_LEN))}
        for _ in range(PROMPTS * (args.steps + 1))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model_dir(Path(tmp) / "m")
        res = [run_reinforge(model_dir, rows, args.steps)]
    for r in res:
        print(json.dumps({"bench": "grpo_gpu", **r}))
    return res


if __name__ == "__main__":
    main()
