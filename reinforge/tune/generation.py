"""A generation pipeline of a local model to tune: prompt template, few-shot count, sampling, votes.

Knobs (all optional; defaults in brackets): ``template`` (Text with ``{input}``; ["{input}"]),
``system`` (Text; none), ``few_shot`` (worked examples from the train split put before the question; 0),
``temperature`` (0 = greedy), ``top_p`` (1), ``max_tokens`` (16) and ``votes`` (self-consistency:
sample that many answers and keep the most common one; 1).

Outputs carry ``prompt_tokens``, ``completion_tokens`` and ``model_calls`` so the tuner can count
tokens and money and trade quality against cost.

>>> msgs = build_messages({"template": "Q: {input}", "few_shot": 1}, "2+2", [("1+1", "2")])
>>> [m["content"] for m in msgs]
['Q: 1+1', '2', 'Q: 2+2']
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from reinforge.errors import ConfigError


@lru_cache(maxsize=2)
def cached_model(name: str):
    from reinforge.train.warmup import load_model

    return load_model(name)


def build_messages(params: dict, text: str, shots: list[tuple[str, str]]) -> list[dict]:
    template = params.get("template", "{input}")
    if "{input}" not in template:
        raise ConfigError(f"template {template!r}: must contain {{input}}")
    msgs = [{"role": "system", "content": params["system"]}] if params.get("system") else []
    for q, a in shots[: int(params.get("few_shot", 0))]:
        msgs += [
            {"role": "user", "content": template.replace("{input}", q)},
            {"role": "assistant", "content": a},
        ]
    return msgs + [{"role": "user", "content": template.replace("{input}", text)}]


def majority(texts: list[str]) -> str:
    """The most common stripped answer; ties go to the one sampled first."""
    counts = Counter(t.strip() for t in texts)
    return max(counts, key=lambda t: (counts[t], -[x.strip() for x in texts].index(t)))


class GenerationPipeline:
    """``pipeline(params, rows)``: rows are OpenAI RFT rows whose last user message is the input."""

    def __init__(
        self, model: str, shots: list[dict] | None = None, answer_key: str = "answer", seed: int = 0
    ):
        self.model_name, self.answer_key, self.seed = model, answer_key, seed
        self.shots = [(self.user_text(r), str(r[answer_key])) for r in shots or []]

    def fingerprint(self) -> dict:
        """What the outputs depend on besides the knobs and the row (the evaluation cache's key)."""
        from pathlib import Path

        from reinforge.tune.fingerprint import path_fingerprint

        local = Path(self.model_name).is_dir()
        return {
            "model": self.model_name,
            "model_files": path_fingerprint(self.model_name) if local else None,
            "shots": self.shots,
            "answer_key": self.answer_key,
            "seed": self.seed,
        }

    @staticmethod
    def user_text(row: dict) -> str:
        return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "user")

    def __call__(self, params: dict, rows: list[dict]) -> list[dict]:
        from reinforge.models.chat import encode_prompt
        from reinforge.models.generation import SamplingParams, generate_chat

        model, tok = cached_model(self.model_name)
        votes = int(params.get("votes", 1))
        temperature = float(params.get("temperature", 0.0))
        sp = SamplingParams(
            temperature=temperature,
            top_p=float(params.get("top_p", 1.0)),
            max_tokens=int(params.get("max_tokens", 16)),
            n=votes if temperature > 0 else 1,
            seed=self.seed,
        )
        convs = [build_messages(params, self.user_text(r), self.shots) for r in rows]
        texts = generate_chat(model, tok, convs, sp)
        outs = []
        for conv, samples in zip(convs, texts):
            prompt_tokens = len(encode_prompt(tok, conv))
            completion = sum(len(tok(s, add_special_tokens=False)["input_ids"]) + 1 for s in samples)
            outs.append(
                {
                    "output_text": majority(samples),
                    "prompt_tokens": prompt_tokens * len(samples),
                    "completion_tokens": completion,
                    "model_calls": len(samples),
                }
            )
        return outs


def generation_objective(
    model: str,
    task: str = "addition",
    examples: int = 64,
    shots: int = 8,
    seed: int = 0,
    grader=None,
    cache=None,
    price_per_1k_input: float = 0.0,
    price_per_1k_output: float = 0.0,
):
    """Grade a local model's generation pipeline on a built-in task's validation rows."""
    from reinforge.tasks import get_task
    from reinforge.tune.objectives import ExampleObjective

    t = get_task(task)
    rows = t.make_rows(examples, seed=seed, split="validation")
    pipe = GenerationPipeline(model, t.make_rows(shots, seed=seed + 1, split="train"), seed=seed)
    return ExampleObjective(
        pipe,
        rows,
        grader or t.grader,
        name=f"gen:{model}:{task}",
        cache=cache,
        price_per_1k_input=price_per_1k_input,
        price_per_1k_output=price_per_1k_output,
        batch_size=examples,
    )
