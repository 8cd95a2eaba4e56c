"""Config errors: one line naming the source (file or --set), the key, the rule and the fix."""

import pytest

from reinforge.config import Config, load_config
from reinforge.errors import ConfigError


class Lora(Config):
    r: int = 16
    alpha: int = 32


class Demo(Config):
    learning_rate: float = 1e-5
    steps: int = 10
    lora: Lora | None = None


def error_of(data, overrides=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(Demo, data, overrides)
    return str(e.value)


@pytest.mark.parametrize(
    "data, overrides, expected",
    [
        # a typo: the closest key is suggested
        ({"lerning_rate": 1}, [], "<config>: lerning_rate: unknown key; did you mean learning_rate?"),
        # a typo inside a section: suggested from the section's keys
        ({"lora": {"alpah": 1}}, [], "<config>: lora.alpah: unknown key; did you mean alpha?"),
        # the value came from --set: the error names the flag and the value, not the file
        ({}, ["learning_rate=abc"], "--set learning_rate=abc: learning_rate: Input should be a valid number"),
        # a nested --set typo
        ({}, ["lora.rr=4"], "--set lora.rr=4: lora.rr: unknown key; did you mean r?"),
        # a wrong type in the file shows the value
        (
            {"steps": "two"},
            [],
            "<config>: steps: Input should be a valid integer, unable to parse string as an",
        ),
    ],
)
def test_errors_name_the_source_and_suggest(data, overrides, expected):
    msg = error_of(data, overrides)
    assert msg.startswith(expected), msg
    assert "\n" not in msg


def test_file_value_is_shown():
    assert "(got 'two')" in error_of({"steps": "two"})


def test_set_opens_a_null_section():
    # `lora: null` in the file, then --set lora.r=8: the section starts there (was "lora is not a mapping")
    assert load_config(Demo, {"lora": None}, ["lora.r=8"]).lora.r == 8
