"""Search-space errors: one line naming the file, the parameter, the rule and the fix."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from reinforge import tune
from reinforge.cli import app
from reinforge.errors import ConfigError


@pytest.mark.parametrize(
    "spec,says",
    [
        ({"type": "float", "low": 0.1, "high": 1e-4}, "low 0.1 > high 0.0001"),  # bounds swapped
        ({"type": "int", "low": 8, "high": 2}, "low 8 > high 2"),  # the same for an int
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log: true needs low > 0"),  # log of 0
    ],
)
def test_bad_range_names_the_parameter_rule_and_fix(spec, says):
    with pytest.raises(ConfigError) as e:
        tune.Space.from_dict({"lr": spec})
    assert str(e.value).startswith("space.lr: ") and says in str(e.value)
    assert "swap them" in str(e.value) or "drop log" in str(e.value)


def test_tune_config_with_low_above_high_is_one_line_naming_the_file(tmp_path):
    # Issue 14: "a tune space with low > high does not name the parameter or the file"
    cfg = tmp_path / "study.yaml"
    space = {"lr": {"type": "float", "low": 0.1, "high": 1e-4}}
    cfg.write_text(yaml.safe_dump({"objective": {"type": "python", "function": "m:f"}, "space": space}))
    r = CliRunner().invoke(app, ["tune", str(cfg), "--set", f"output_dir={tmp_path / 'out'}"])
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(cfg) in line and "lr" in line and "low 0.1 > high 0.0001" in line and "swap them" in line
