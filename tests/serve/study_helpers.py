"""A tune study a key can score by hand from the web UI: examples/tune/agent.yaml, its config beside its
file in the key's studies folder, pointed at the scripted tool-using endpoint."""

from __future__ import annotations

from pathlib import Path

import yaml

from reinforge.config import load_config
from reinforge.tune.factory import build_study
from reinforge.tune.schema import TuneConfig

AGENT = Path(__file__).resolve().parents[2] / "examples/tune/agent.yaml"


def agent_study(folder: Path, base_url: str) -> Path:
    """``folder/agent.db`` (study ``agent``, no trials yet) with ``folder/agent.yaml`` beside it."""
    cfg = yaml.safe_load(AGENT.read_text())
    for key in ("data", "grader", "tools"):
        cfg["objective"][key] = str(AGENT.parent / cfg["objective"][key])
    cfg["objective"]["llm"]["base_url"] = base_url
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    db = folder / "agent.db"
    build_study(load_config(TuneConfig, folder / "agent.yaml", [f"storage={db}"])).storage.close()
    return db
