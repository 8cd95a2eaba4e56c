"""``reward_model``: score a sample with a trained reward model, mapped to 0..1: any directory that
``AutoModelForSequenceClassification`` loads with one label (``reinforge rm``'s ``final/``, TRL's
``RewardTrainer`` output), or one in the older ``reinforge rm`` format.

Spec::

    {"type": "reward_model", "name": "rm", "model": "runs/rm/final",
     "input": "{{sample.output_text}}",      # optional: the response text (template)
     "prompt": "{{item.question}}",          # optional: the prompt text; default: the item's messages
     "device": "cpu",                        # optional
     "calibration": "sigmoid"}               # optional: "sigmoid" (0..1, default) or "standard"

Calibration (documented in ``models/reward_model.py``): reward = sigmoid((raw - mu) / sigma) with
``mu``/``sigma`` the mean and std of the raw scores on held-out responses at training time, so a
typical training response scores about 0.5 (a directory without ``reward_model.json``, e.g. TRL's:
``mu = 0``, ``sigma = 1``, so the reward is sigmoid(raw)). ``"calibration": "standard"`` gives (raw - mu) / sigma
instead (unbounded; what PPO optimises). ``metadata["raw_score"]`` keeps the raw score.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from reinforge.graders.base import Grade, Grader
from reinforge.graders.templating import TemplateVariableError, compile_template


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    from reinforge.models.reward_model import RewardModel

    return RewardModel.load(path, device)


def item_prompt(item: dict) -> list[dict]:
    """The prompt messages of a dataset row: ``messages`` (minus a trailing assistant turn) or ``prompt``."""
    if isinstance(item.get("messages"), list):
        from reinforge.models.chat import prompt_messages

        return prompt_messages(item)
    prompt = item.get("prompt", "")
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]


class RewardModelGrader(Grader):
    def __init__(self, spec: dict):
        if not spec.get("model"):
            raise ValueError(
                "reward_model grader: 'model' (a reward model directory: `reinforge rm`'s or TRL's) is required"
            )
        self.name = spec.get("name", "reward_model")
        self.path = str(spec["model"])
        self.input = compile_template(spec.get("input", "{{sample.output_text}}"))
        self.prompt = compile_template(spec["prompt"]) if spec.get("prompt") else None
        self.device = spec.get("device", "cpu")
        self.batch_size = int(spec.get("batch_size", 64))
        self.calibration = spec.get("calibration", "sigmoid")
        if self.calibration not in ("sigmoid", "standard"):
            raise ValueError(
                f"reward_model grader: calibration {self.calibration!r}: choose sigmoid or standard"
            )
        self.model = _load(self.path, self.device)  # fail at build time, not on the first grade

    def grade(self, item: dict, sample: dict) -> Grade:
        return self.grade_batch([(item, sample)])[0]

    def grade_batch(self, pairs: Sequence[tuple[dict, dict]]) -> list[Grade]:
        out: list[Grade | None] = [None] * len(pairs)
        prompts, responses, where = [], [], []
        for i, (item, sample) in enumerate(pairs):
            try:
                response = self.input.render(item, sample)
                prompt = (
                    [{"role": "user", "content": self.prompt.render(item, sample)}]
                    if self.prompt
                    else item_prompt(item)
                )
            except TemplateVariableError as e:
                out[i] = Grade(0.0, {"error": str(e)}, {"invalid_variable_error": True})
                continue
            prompts.append(prompt)
            responses.append(response)
            where.append(i)
        if where:
            try:
                raw = self.model.score(prompts, responses, self.batch_size)
            except Exception as e:  # a grader never crashes training
                for i in where:
                    out[i] = Grade(
                        0.0, {"error": f"{type(e).__name__}: {e}"}, {"model_grader_server_error": True}
                    )
                return out  # type: ignore[return-value]
            mapped = self.model.calibrate(raw) if self.calibration == "sigmoid" else self.model.normalise(raw)
            for i, r, p in zip(where, raw.tolist(), mapped.tolist()):
                out[i] = Grade(float(p), {"raw_score": r})
        return out  # type: ignore[return-value]
