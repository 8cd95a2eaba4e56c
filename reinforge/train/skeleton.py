"""The run skeleton every trainer calls, written once: the run directory and ``config.yaml``, the
resume point, the optimizer and its restore, the metric sinks (``metrics.jsonl`` first), evaluation and
checkpoint cadence, stop signals, the progress bar, ``final/``, ``summary.json`` and the plot.

A trainer shows only its algorithm (``sft_trainer.py`` is the shortest)::

    with Run(cfg, "sft", "sft", resume, on_step, should_stop) as run:
        model, tok = load_model(run.last or cfg.model)            # resume: the checkpoint's weights
        optimizer, scheduler = run.optimizer(model, tok, total)   # restored on resume
        for step in run.steps(evaluate):                          # evaluates, checkpoints, stops
            ...                                                   # the algorithm's step
            run.log({"step": step, "kind": "train", ...}, bar={"loss": ...})
        return run.finish({...})                                  # summary.json, plot, table

Experiment trackers are more :class:`MetricSink` s: ``report_to: [tensorboard, wandb, mlflow, trackio]``
(``train/trackers.py``) is checked in ``Run.__init__`` and opened beside ``metrics.jsonl`` in
:meth:`Run.optimizer` (each sees every record ``metrics.jsonl`` sees, and is closed with the run), so no
trainer changes. Under ``torch.distributed`` (``train/distributed.py``, joined here) every rank runs the same
loop and the same cadence (the stop signal is agreed across ranks in :meth:`Run.steps`); only rank 0
(``is_main``) evaluates, sends records to the sinks and writes checkpoints, ``final/``, the summary, the
plot and the table; the other ranks read ``metrics.jsonl`` back. With ``distributed: {fsdp: true}``
(``train/fsdp.py``) the model is sharded in :meth:`Run.optimizer`, every rank gathers it for rank 0's
evaluation and for each checkpoint and ``final/``, and the optimizer's state is gathered and restored whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from reinforge.config import Config, load_config
from reinforge.errors import ConfigError, ReinforgeError
from reinforge.train import checkpoint as ck
from reinforge.train import distributed, fsdp
from reinforge.train.optimizer import adamw
from reinforge.train.precision import autocast, enable_gradient_checkpointing
from reinforge.train.progress import TrainProgress, print_table
from reinforge.train.run import MetricsLog, plot_metric, prepare_run_dir, write_summary
from reinforge.train.schedule import make_scheduler
from reinforge.train.trackers import check_installed, open_trackers

NAN = float("nan")


class MetricSink(Protocol):
    """Receives every logged record (train and eval) in order; closed when the run ends.

    ``MetricsLog`` is the reference sink; a tracker maps a record's ``step`` and namespaced names
    (``reward/mean``, ``eval/loss``) onto its own calls."""

    def log(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Run:
    """One training run. Call order: ``Run(...)`` (as a context manager) -> build the models from
    :attr:`last` -> :meth:`optimizer` -> ``for step in`` :meth:`steps` with :meth:`log` in the body ->
    :meth:`finish`.

    ``algorithm`` names the run in ``summary.json``, ``name`` in the bar and the final table.
    ``on_step`` sees every record after the sinks (the service's job events); ``should_stop`` is asked
    after every step: a true answer checkpoints that step and ends the loop (``status: stopped``)."""

    def __init__(
        self,
        cfg: Any,  # a trainer's Config: model, output_dir, seed, the optimizer's and the cadence's fields
        algorithm: str,
        name: str,
        resume: bool,
        on_step: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        sinks: list[MetricSink] | None = None,
    ):
        self.cfg = cfg
        self.algorithm, self.name = algorithm, name
        self.on_step, self.should_stop = on_step, should_stop
        distributed.init()  # torchrun's process group, joined once (train/distributed.py)
        check_fsdp(cfg, algorithm)
        self.is_main = distributed.rank() == 0
        self.t_start = time.time()
        self.dir = prepare_run_dir(Path(cfg.output_dir), resume, cfg.to_yaml())
        # the resume point: the newest finished checkpoint, its step and what the trainer saved in it
        self.last: Path | None = ck.latest_checkpoint(self.dir) if resume else None
        self.t_start -= ck.elapsed_seconds(self.last)  # a resumed run counts the time before the kill too
        self.state: dict[str, Any] = ck.load_trainer_state(self.last) if self.last else {"step": 0}
        self.start: int = self.state["step"]
        self.resume = resume
        check_installed(getattr(cfg, "report_to", []))  # a missing tracker package stops the run here
        self.sinks: list[MetricSink] = list(sinks or [])  # metrics.jsonl joins first, in optimizer()
        self.evals: list[dict] = []  # this session's evaluation records ({} where nothing was measured)
        self.final_eval: dict = {}  # the evaluation after the last step ({} when stopped)
        self.stopped = False
        self.total = 0
        self._bar: TrainProgress | None = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self._close_bar()
        for sink in self.sinks:
            sink.close()

    # ------------------------------------------------------------------------------------ set-up

    def optimizer(self, model, tokenizer, total: int, schedule_steps: int | None = None):
        """(AdamW over ``model``'s trainable parameters, LR schedule over ``schedule_steps or total``),
        restored from :attr:`last` on resume. ``model`` and ``tokenizer`` are what checkpoints save.
        Opens ``metrics.jsonl``: call it once the data and models have loaded."""
        cfg = self.cfg
        self.model, self.tokenizer, self.total = model, tokenizer, total
        distributed.broadcast_parameters(model)  # every rank starts from rank 0's weights
        if getattr(cfg, "gradient_checkpointing", False):
            enable_gradient_checkpointing(model)
        if getattr(cfg, "distributed", None) is not None and cfg.distributed.fsdp:
            fsdp.shard(model)  # each decoder layer sharded over the ranks, before AdamW sees the shards
        self.optim = adamw(model.parameters(), cfg.learning_rate, cfg.weight_decay)
        self.scheduler = make_scheduler(
            self.optim, cfg.warmup_steps, schedule_steps or total, cfg.lr_schedule
        )
        if self.last is not None:
            ck.load_optimizer_state(
                self.last,
                self.optim,
                self.scheduler,
                lr=cfg.learning_rate,
                weight_decay=cfg.weight_decay,
                model=model,
            )
        # metrics.jsonl is written (or cut back to the resume step) only once data and models have loaded
        resume_step = self.start if self.resume else None  # other ranks only read what rank 0 writes
        self.metrics = MetricsLog(self.dir / "metrics.jsonl", resume_step, read_only=not self.is_main)
        self.sinks.insert(0, self.metrics)
        if self.is_main and getattr(cfg, "report_to", []):  # report_to's trackers, on rank 0 only
            args = (cfg.report_to, self.dir, cfg.model_dump(mode="json"), resume_step, cfg.tracker_args)
            self.sinks[1:1] = open_trackers(*args)
        return self.optim, self.scheduler

    # ------------------------------------------------------------------------------------ the loop

    def steps(
        self,
        evaluate: Callable[[int], dict[str, Any]] | None,
        state: Callable[[int], dict[str, Any]] = lambda step: {},
        *,
        val: tuple[str, str] = ("val", "eval/reward_mean"),
        description: str | None = None,
        save_last: bool = True,
    ) -> Iterator[int]:
        """Yield the steps left (``start + 1 .. total``) inside the progress bar. Around them: the first
        evaluation (a fresh run), then after each step the evaluation every ``eval_interval`` steps, the
        stop signal and the checkpoint (every ``save_interval`` steps, at the last step unless
        ``save_last`` is false, and when stopped; ``state(step)`` goes into its ``trainer_state.json``),
        and after the last step the final evaluation and ``final/``.

        ``evaluate(step)`` returns the ``eval/...`` fields to log ({} for none; ``evaluate=None``: a run
        without validation data, whose evaluations are empty); the bar shows the
        latest ``val = (label, key)`` of them. ``save_last=False``: the trainer writes ``final/`` itself."""
        cfg, total = self.cfg, self.total
        self._val = val
        if self.start == 0:
            self._evaluate(evaluate, 0)
        self._bar = TrainProgress(
            total,
            self.start,
            description or self.name,
            enabled=cfg.progress and self.is_main,
            started=self.t_start,
        ).__enter__()
        for step in range(self.start + 1, total + 1):
            yield step
            if cfg.eval_interval and step % cfg.eval_interval == 0 and step != total:
                self._evaluate(evaluate, step)
            self.stopped = distributed.any_across(bool(self.should_stop and self.should_stop()))
            if (save_last or step != total) and ck.checkpoint_due(
                step, total, self.stopped, cfg.save_interval
            ):
                weights, optim = fsdp.full_state(self.model, self.optim)  # sharded: gathered to rank 0
                if self.is_main:
                    ck.save_and_prune(
                        self.dir,
                        step,
                        self.model,
                        self.tokenizer,
                        self.optim,
                        self.scheduler,
                        state(step),
                        cfg.keep_checkpoints,
                        self.t_start,
                        weights=weights,
                        optimizer_state=optim,
                    )
                distributed.barrier()  # a kill after this step finds its checkpoint whole
            if self.stopped:
                break
        if not self.stopped:  # in the bar: its time and val figure include the final evaluation
            self.final_eval = self._evaluate(evaluate, total)
            self._bar.update(total, {val[0]: self.final_eval.get(val[1], NAN)})
            if save_last:
                self.save_final()
        self._close_bar()
        distributed.barrier()  # every rank then reads the whole metrics.jsonl

    def autocast(self, model=None):
        """The context of a step's forward and backward: bf16 autocast under ``precision: bf16``."""
        return autocast(getattr(self.cfg, "precision", "auto"), model or self.model)

    def log(self, record: dict[str, Any], bar: dict[str, Any] | None = None) -> None:
        """Send ``record`` to every sink, then to ``on_step``; with ``bar``, show those figures too."""
        if self.is_main:
            for sink in self.sinks:
                sink.log(record)
        if self.on_step:
            self.on_step(record)
        if bar is not None and self._bar is not None:
            label, key = self._val
            latest = self.evals[-1].get(key, NAN) if self.evals else NAN
            self._bar.update(record["step"], {**bar, label: latest})

    def _evaluate(self, evaluate: Callable[[int], dict[str, Any]] | None, step: int) -> dict:
        fields: dict[str, Any] = {}
        if evaluate is not None:
            with fsdp.full_weights(self.model):  # sharded: every rank gathers, rank 0 evaluates
                fields = evaluate(step) if self.is_main else {}
        rec = {"step": step, "kind": "eval", **fields} if fields else {}
        if rec:
            self.log(rec)
        self.evals.append(rec)
        return rec

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    # ------------------------------------------------------------------------------------ the end

    def save_final(self, model=None, tokenizer=None) -> None:
        """``final/``: the trained model (default: the one checkpoints save), loadable by ``transformers``."""
        if model is None:
            model, tokenizer = self.model, self.tokenizer
        weights, _ = fsdp.full_state(model)  # sharded: every rank gathers, rank 0 writes
        if self.is_main:
            ck.save_final(self.dir, model, tokenizer, weights)

    def records(self, kind: str | None = None) -> list[dict]:
        """The run's logged records, the ones before a resume included."""
        return self.metrics.records(kind)

    def eval_value(self, key: str, first: bool = False) -> Any:
        """``key`` in the last (``first``: the first) logged evaluation, or None."""
        evals = self.records("eval")
        return evals[0 if first else -1].get(key) if evals else None

    def train_mean(self, key: str, last: int = 5) -> float | None:
        """Mean of ``key`` over the last ``last`` train records (None before any step)."""
        tail = self.records("train")[-last:]
        return sum(r[key] for r in tail) / len(tail) if tail else None

    def finish(
        self,
        fields: dict[str, Any],
        tail: dict[str, Any] | None = None,
        plot: tuple[str, ...] = ("reward/mean", "eval/reward_mean"),
    ) -> dict[str, Any]:
        """Write ``summary.json`` (algorithm, model, steps, status, ``fields``, seconds, run_dir, ``tail``)
        and the plot (``plot_metric``'s train key, eval key[, file name, title]); print the table."""
        train = self.records("train")
        summary = {
            "algorithm": self.algorithm,
            "model": self.cfg.model,
            "steps": train[-1]["step"] if train else 0,
            "total_steps": self.total,
            "status": "stopped" if self.stopped else "succeeded",
            **fields,
            "seconds": round(time.time() - self.t_start, 1),
            "run_dir": str(self.dir),
            **(tail or {}),
        }
        if self.is_main:
            write_summary(self.dir, summary)
            plot_metric(self.dir, self.records(), *plot)
            if self.cfg.progress:
                shown = {k: v for k, v in summary.items() if v is not None and k != "run_dir"}
                print_table(f"{self.name} {self.dir}", shown)
        return summary


def check_fsdp(cfg: Any, algorithm: str) -> None:
    """``distributed.fsdp`` only where it is wired: rft and sft, without LoRA."""
    if getattr(cfg, "distributed", None) is None or not cfg.distributed.fsdp:
        return
    if algorithm not in ("grpo", "sft"):
        raise ConfigError(
            f"distributed.fsdp: true is supported by rft and sft, not {algorithm}; "
            "set --set distributed.fsdp=false (data parallel) for this trainer"
        )
    if getattr(cfg, "lora", None) is not None:
        raise ConfigError(
            "distributed.fsdp: true with lora: the adapters are small, shard nothing; "
            "set --set distributed.fsdp=false (data parallel) or drop lora"
        )


def main(
    config_cls: type[Config], train: Callable[..., dict], config_path, overrides: list[str], resume: bool
):
    """The CLI's entry to every trainer: the config from ``config_path`` and ``--set`` ``overrides``,
    a refusal to start afresh over an unfinished run, then ``train(cfg, resume=resume)`` (on Ray Train's
    workers with ``distributed: {backend: ray}``)."""
    cfg: Any = load_config(config_cls, config_path, overrides)
    out = Path(cfg.output_dir)
    if not resume and (out / "checkpoints").exists() and not (out / "summary.json").exists():
        raise ReinforgeError(f"{cfg.output_dir}: an unfinished run is there; pass --resume to continue it")
    if getattr(cfg, "distributed", None) is not None and cfg.distributed.backend == "ray":
        from reinforge.train.ray_train import run_on_ray  # ray loads only for these runs

        return run_on_ray(train, cfg, resume)
    return train(cfg, resume=resume)
