"""Key docs come from the comments beside the fields; docs/config.md and `reinforge config` stay complete."""

from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from reinforge.config import CONFIG_CLASSES, Config
from reinforge.config_docs import config_class, config_markdown, config_rows, field_comments

ROOT = Path(__file__).resolve().parents[1]


class Inner(Config):
    r: int = 16  # adapter rank


class Sample(Config):
    # -- a section header, not a meaning
    lr: float = 1e-3  # step size
    # two lines above
    # make one meaning
    steps: int | None = None
    mode: Literal["a", "b"] = "a"  # a comment inside the parentheses ruff makes of a long line
    described: int = Field(3, description="a description wins over a comment")  # not this
    inner: Inner | None = None
    bare: str = "x"


def test_meanings_types_and_defaults_come_from_the_class():
    rows = {r.key: (r.type, r.default, r.meaning) for r in config_rows(Sample)}
    assert rows == {
        "lr": ("float", "0.001", "step size"),
        "steps": ("int | null", "null", "two lines above make one meaning"),
        "mode": ("a|b", "a", "a comment inside the parentheses ruff makes of a long line"),
        "described": ("int", "3", "a description wins over a comment"),
        "inner": ("section | null", "null", "Inner keys, listed as inner.KEY"),
        "inner.r": ("int", "16", "adapter rank"),
        "bare": ("str", "x", ""),
    }


def test_inherited_fields_keep_their_comments():
    class Child(Sample):
        extra: int = 1  # a subclass's own field

    assert field_comments(Child) | {} == {**field_comments(Sample), "extra": "a subclass's own field"}


@pytest.mark.parametrize("command", list(CONFIG_CLASSES))
def test_every_key_has_a_meaning(command):
    missing = [r.key for r in config_rows(config_class(command)) if not r.meaning]
    assert not missing, f"add a `# comment` beside these fields of {command}'s config: {missing}"


def test_docs_config_md_is_up_to_date():
    assert (ROOT / "docs/config.md").read_text() == config_markdown(), (
        "docs/config.md is stale: run `reinforge config --markdown > docs/config.md`"
    )
