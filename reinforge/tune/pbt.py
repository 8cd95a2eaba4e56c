"""Population-based training (Jaderberg et al., 2017) for any trainer that can checkpoint and resume.

A member is a run directory plus hyperparameters. ``train(params, run_dir, until) -> score`` trains a
member to ``until`` total steps, resuming from the checkpoint in ``run_dir`` when there is one, and
returns its score (higher is better unless ``direction="minimize"``). Every ``interval`` steps:

1. exploit: each member in the bottom ``quantile`` copies the run directory (weights *and* optimiser
   state, step counter included) of a member drawn from the top ``quantile``;
2. explore: it perturbs the donor's numeric hyperparameters by a factor from ``factors`` (clipped to
   the space) and, with probability ``resample_prob``, redraws each one from the space.

The copied member then *continues* from the donor's checkpoint — it does not restart from scratch.
Each (member, segment) is recorded as a trial of the study, with ``member``, ``step`` and ``donor``.

>>> from reinforge.tune.space import Space, Float
>>> explore({"lr": 1e-3}, Space({"lr": Float(1e-4, 1e-2, log=True)}), __import__("random").Random(0), (0.5, 2.0), 0.0)
{'lr': 0.002}
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reinforge.errors import ConfigError
from reinforge.tune.executors import Executor, make_executor
from reinforge.tune.space import Float, Int, Space
from reinforge.tune.study import Study

TrainFn = Callable[[dict, Path, int], float]


def copy_run_dir(src: Path, dst: Path) -> None:
    """Replace ``dst`` with a copy of ``src`` (checkpoints, optimiser state, logs)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def explore(
    params: dict, space: Space, rng: random.Random, factors: tuple[float, ...], resample_prob: float
) -> dict:
    """Perturb numbers by a random factor (clipped to the space, integers onto their ``step`` grid); redraw
    any knob with ``resample_prob``."""
    out = dict(params)
    for name, value in params.items():
        p = space[name]
        if rng.random() < resample_prob:
            out[name] = p.sample(rng)
        elif isinstance(p, Int):  # the nearest allowed value (range, step), at least one step on
            f = rng.choice(factors)
            v = p.nearest(value * f)
            out[name] = p.nearest(value + p.step * (1 if f > 1 else -1)) if v == value and f != 1 else v
        elif isinstance(p, Float):
            out[name] = min(max(value * rng.choice(factors), p.low), p.high)
    return space.repair(out, rng)


@dataclass
class Member:
    index: int
    params: dict
    run_dir: Path
    score: float = math.nan  # the last segment's (nan before the first)
    history: list[dict] = field(default_factory=list)  # one record per segment


def _train_segment(train: TrainFn, params: dict, run_dir: Path, until: int) -> float:
    return float(train(params, run_dir, until))


def pbt(
    train: TrainFn,
    space: Space | dict,
    root: str | Path,
    population: int = 4,
    interval: int = 10,
    total_steps: int = 40,
    quantile: float = 0.25,
    factors: tuple[float, ...] = (0.8, 1.25),
    resample_prob: float = 0.2,
    direction: str = "maximize",
    seed: int = 0,
    initial: list[dict] | None = None,
    copy: Callable[[Path, Path], None] = copy_run_dir,
    study: Study | None = None,
    executor: Executor | str | dict | None = None,
    workers: int = 1,
    explore_enabled: bool = True,
) -> dict:
    """Train a population with exploit/explore every ``interval`` steps; returns a summary with the best
    member, every member's final score and the lineage of exploits.

    ``explore_enabled=False`` with ``quantile=0`` gives the fixed-hyperparameter baseline of the same
    population at the same total steps."""
    if interval < 1 or total_steps < interval or not 0 <= quantile <= 0.5 or population < 2:
        raise ConfigError(
            f"pbt: need population >= 2, 1 <= interval ({interval}) <= total_steps ({total_steps}) "
            f"and 0 <= quantile ({quantile}) <= 0.5"
        )
    space = space if isinstance(space, Space) else Space(space)
    rng = random.Random(seed)
    root = Path(root)
    members = [
        Member(i, dict(initial[i]) if initial else space.sample(rng), root / f"member-{i}")
        for i in range(population)
    ]
    if left := [m.run_dir.name for m in members if m.run_dir.exists()]:  # their checkpoints would be resumed
        raise ConfigError(
            f"{root}: an earlier PBT run left {', '.join(left)} there and PBT does not resume; delete "
            "the folder or set another output_dir"
        )
    study = study or Study(space, "random", [direction], root / "pbt.db", name="pbt")
    ex = make_executor(executor, workers)
    own_executor = not isinstance(executor, Executor)
    sign = 1.0 if direction == "maximize" else -1.0
    lineage: list[dict] = []
    try:
        for until in range(interval, total_steps + 1, interval):
            # 1. train every member to `until` steps (in parallel when the executor has workers)
            trials = {m.index: study.ask(m.params) for m in members}
            handles = {ex.submit(_train_segment, train, m.params, m.run_dir, until): m for m in members}
            while handles:
                for h, ok, out in ex.wait(list(handles)):
                    m = handles.pop(h)
                    if not ok:
                        raise RuntimeError(f"pbt member {m.index} failed at step {until}: {out}")
                    m.score = out
                    m.history.append({"step": until, "score": out, "params": dict(m.params)})
                    study.tell(trials[m.index].number, out, attrs={"member": m.index, "step": until})
            if until == total_steps or quantile == 0:
                continue
            # 2. exploit and explore: the bottom quantile copies a top-quantile member
            ranked = sorted(members, key=lambda m: -sign * m.score)
            n_cut = max(1, int(round(population * quantile)))
            top, bottom = ranked[:n_cut], ranked[-n_cut:]
            for m in bottom:
                donor = rng.choice(top)
                copy(donor.run_dir, m.run_dir)
                new = (
                    explore(donor.params, space, rng, factors, resample_prob)
                    if explore_enabled
                    else dict(donor.params)
                )
                lineage.append(
                    {"step": until, "member": m.index, "donor": donor.index, "old": m.params, "new": new}
                )
                m.params = new
    finally:
        if own_executor:
            ex.shutdown()
    best = max(members, key=lambda m: sign * m.score)
    scores = sorted(m.score for m in members)
    return {
        "best_member": best.index,
        "best_score": best.score,
        "best_params": best.params,
        "scores": [m.score for m in members],
        "median_score": scores[len(scores) // 2]
        if population % 2
        else (scores[population // 2 - 1] + scores[population // 2]) / 2,
        "lineage": lineage,
        "members": [{"index": m.index, "params": m.params, "history": m.history} for m in members],
        "study": study,
    }


def example_train_fn(params: dict, run_dir: Path, until: int) -> float:
    """A cheap pure-torch member for tests: SGD on a fixed noisy regression, checkpointed to ``ckpt.pt``.

    The score is minus the held-out loss. Returns only after saving weights, optimiser and step."""
    import torch  # ~2 s to import: PBT itself does not need it (reinforge.tune loads without torch)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 8, generator=g)
    w_true = torch.randn(8, 1, generator=g)
    y = X @ w_true + 0.1 * torch.randn(256, 1, generator=g)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=params.get("momentum", 0.0))
    step = 0
    ckpt = run_dir / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        for group in opt.param_groups:  # the (possibly perturbed) hyperparameters of this segment
            group["lr"] = params["lr"]
            group["momentum"] = params.get("momentum", 0.0)
    with (run_dir / "segments.jsonl").open("a") as f:
        f.write(f'{{"start_step": {step}, "weight0": {model.weight[0, 0].item()!r}}}\n')
    while step < until:
        i = (step * 32) % 192
        loss = torch.nn.functional.mse_loss(model(X[i : i + 32]), y[i : i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
    with torch.no_grad():
        val = torch.nn.functional.mse_loss(model(X[192:]), y[192:]).item()
    return -val if val == val else -1e9
