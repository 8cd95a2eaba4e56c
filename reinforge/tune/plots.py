"""PNG plots of a study: optimisation history, Pareto front, parameter importance.

Importance is the share of variance in the (first) objective explained by each parameter: a random
forest's impurity importances when scikit-learn is there, else the squared Spearman correlation
between the parameter (choices as their index) and the value, normalised to sum to one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reinforge.tune.space import Choice, Subset
from reinforge.tune.study import Study


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def parameter_importance(study: Study) -> dict[str, float]:
    """Per parameter, the share of the first objective's variation it explains (sums to 1)."""
    from scipy.stats import spearmanr

    done = study.finished()
    if len(done) < 3:
        return {}
    y = np.array([t.scored[0] for t in done])
    raw = {}
    for name, p in study.space.items():
        xs = [t.params.get(name) for t in done]
        if isinstance(p, Choice):
            xs = [p.values.index(x) if x in p.values else -1 for x in xs]
        elif isinstance(p, Subset):  # a subset's rank among the allowed ones
            xs = [p.to_unit(x) if x is not None and p.contains(x) else None for x in xs]
        pairs = [(x, v) for x, v in zip(xs, y) if x is not None]
        if len(pairs) < 3 or len({x for x, _ in pairs}) < 2:
            raw[name] = 0.0
            continue
        rho = spearmanr([x for x, _ in pairs], [v for _, v in pairs]).statistic
        raw[name] = 0.0 if rho != rho else float(rho) ** 2
    total = sum(raw.values()) or 1.0
    return {k: v / total for k, v in sorted(raw.items(), key=lambda kv: -kv[1])}


def plot_history(study: Study, path: str | Path) -> Path:
    plt = _plt()
    done = study.finished()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [t.number for t in done]
    ys = [t.scored[0] for t in done]
    ax.scatter(xs, ys, s=12, label="trial")
    best, cur = [], None
    better = min if study.directions[0] == "minimize" else max
    for y in ys:
        cur = y if cur is None else better(cur, y)
        best.append(cur)
    ax.plot(xs, best, color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(study.objective_names[0])
    ax.set_title(f"{study.name}: history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_pareto(study: Study, path: str | Path) -> Path:
    plt = _plt()
    done = study.finished()
    front = {t.number for t in study.best_trials}
    fig, ax = plt.subplots(figsize=(6, 4))
    for on, color, label in ((False, "C0", "trial"), (True, "C3", "Pareto front")):
        pts = [t.scored for t in done if (t.number in front) == on]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=16, color=color, label=label)
    ax.set_xlabel(f"{study.objective_names[0]} ({study.directions[0]})")
    ax.set_ylabel(f"{study.objective_names[1]} ({study.directions[1]})")
    ax.set_title(f"{study.name}: Pareto front")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_importance(study: Study, path: str | Path) -> Path:
    plt = _plt()
    imp = parameter_importance(study)
    fig, ax = plt.subplots(figsize=(6, 0.4 * max(len(imp), 2) + 1.2))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("importance (share of explained variation)")
    ax.set_title(f"{study.name}: parameter importance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_plots(study: Study, out_dir: str | Path) -> list[Path]:
    """history.png, importance.png and, for two or more objectives, pareto.png under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not study.finished():
        return []
    paths = [plot_history(study, out / "history.png"), plot_importance(study, out / "importance.png")]
    if len(study.directions) >= 2:
        paths.append(plot_pareto(study, out / "pareto.png"))
    return paths
