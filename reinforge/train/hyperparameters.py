"""OpenAI's fine-tuning hyperparameter names -> trainer config fields: one table per method, one mapping.

GRPOConfig's ``hyperparameters:`` block (CLI) and ``reinforge.openai_compat`` (the service's jobs) both call
:func:`map_hyperparameters`, so a job and a YAML with the same hyperparameters train the same run.
``learning_rate_multiplier`` scales the config's own ``learning_rate`` (the value set beside it, else the
config class's default); ``"auto"`` and ``null`` keep the default; ``reasoning_effort`` means nothing here.

>>> map_hyperparameters("supervised", {"n_epochs": 2, "learning_rate_multiplier": 0.5}, {"learning_rate": 2e-5})
{'epochs': 2.0, 'learning_rate': 1e-05}
>>> map_hyperparameters("reinforcement", {"compute_multiplier": 0.25}, {"group_size": 8})
{'group_size': 2}
"""

from __future__ import annotations

from typing import Any

from reinforge.errors import ConfigError

# OpenAI name -> (our field, how the value maps): "float"/"int" copy it; "scale" multiplies the field's
# base value; "group" scales the group size (more compute = more samples explored per prompt, at least 2)
HYPERPARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "reinforcement": {
        "n_epochs": ("epochs", "float"),
        "batch_size": ("prompts_per_step", "int"),
        "learning_rate_multiplier": ("learning_rate", "scale"),
        "compute_multiplier": ("group_size", "group"),
        "eval_interval": ("eval_interval", "int"),
        "eval_samples": ("eval_samples", "int"),
        "seed": ("seed", "int"),
    },
    "supervised": {
        "n_epochs": ("epochs", "float"),
        "batch_size": ("batch_size", "int"),
        "learning_rate_multiplier": ("learning_rate", "scale"),
    },
    "dpo": {
        "n_epochs": ("epochs", "float"),
        "batch_size": ("batch_size", "int"),
        "learning_rate_multiplier": ("learning_rate", "scale"),
        "beta": ("beta", "float"),
    },
}
IGNORED = ("reasoning_effort",)  # no effect on models without a reasoning mode
MAY_BE_ZERO = ("eval_interval", "seed")  # 0 means "only at the start and the end" / seed 0


def map_hyperparameters(method: str, hp: dict[str, Any], base: dict[str, Any], where: str = "") -> dict:
    """Config fields for OpenAI hyperparameters ``hp`` of ``method``; ``base`` holds the fields' values
    before the mapping (those set beside ``hp``, else the defaults). Raises ConfigError naming
    ``{where}hyperparameters.{name}``."""
    table, out = HYPERPARAMETERS[method], {}
    for name, value in hp.items():
        key = f"{where}hyperparameters.{name}"
        if value in (None, "auto") or name in IGNORED:
            continue
        if name not in table:
            raise ConfigError(f"{key}: unknown OpenAI hyperparameter; known: {', '.join(table)}")
        low = 0 if name in MAY_BE_ZERO else 1e-300
        if not isinstance(value, int | float) or isinstance(value, bool) or value < low:
            rule = "a number >= 0" if low == 0 else "a positive number"
            raise ConfigError(f"{key}: must be {rule}, got {value!r}")
        field, how = table[name]
        if how == "int" and value != int(value):
            raise ConfigError(f"{key}: must be a whole number, got {value!r}")
        if how == "scale":
            out[field] = float(base[field]) * float(value)
        elif how == "group":
            out[field] = max(2, round(int(base[field]) * float(value)))
        else:
            out[field] = float(value) if how == "float" else int(value)
    return out


def base_values(config_class: Any, method: str, data: dict[str, Any]) -> dict[str, Any]:
    """The values ``map_hyperparameters`` scales: those in ``data``, else ``config_class``'s defaults."""
    fields = {field for field, how in HYPERPARAMETERS[method].values() if how in ("scale", "group")}
    return {f: data.get(f, config_class.model_fields[f].default) for f in fields}
