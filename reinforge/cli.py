"""The ``reinforge`` command. Each subcommand is a thin wrapper over a library function.

Errors caused by the user's input (``ReinforgeError``) print one line and exit 2; ``--debug``
(anywhere on the command line) shows the full traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from reinforge import cli_keys, cli_runs, cli_worker
from reinforge.errors import ReinforgeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="reinforge: make LLM systems better from graded feedback (RFT, RLHF, tuning). "
    "Add --debug anywhere to see the full traceback of an error.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags show no value type (rich's showed `--resume <bool>`)
)
keys_app = typer.Typer(help="API keys for `reinforge serve`.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
data_app = typer.Typer(help="Dataset tools: `data to-sft` (RFT rows -> SFT rows).", no_args_is_help=True)
app.add_typer(data_app, name="data")

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set learning_rate=3e-5 or --set lora.r=8 (repeatable); "
        "every key: `reinforge config COMMAND`.",
    ),
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue a killed run from its last checkpoint (a flag, no value).")
]
ConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="YAML config file.")]
SkipAudit = Annotated[
    bool, typer.Option("--skip-audit", help="Skip the grader audit before training (--set audit=false).")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"reinforge {version('reinforge')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """The options of ``reinforge`` itself."""


def _debug() -> bool:
    return os.environ.get("REINFORGE_DEBUG") == "1"


def user_errors(fn):
    """Turn ``ReinforgeError`` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ReinforgeError as e:
            if _debug():
                raise
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except OSError as e:  # a path the user gave (or a full disk...): name it, no traceback
            if _debug() or not e.filename:
                raise
            typer.echo(f"error: {e.filename}: {e.strerror or e}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; resume with --resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


# `reinforge ALGO CONFIG.yaml [--set KEY=VALUE] [--resume]`: each runs its trainer via train/registry.py
TRAIN_COMMANDS = {
    "rft": "Reinforcement fine-tuning (GRPO) of a policy against a grader.",
    "sft": "Supervised fine-tuning on chat messages (loss on assistant tokens).",
    "rm": "Train a reward model on preference pairs, rankings or thumbs.",
    "ppo": "PPO against a reward model or grader, KL penalty to the reference.",
    "dpo": "Direct preference optimisation (and variants) on preference pairs.",
    "rlhf": "The RLHF loop: SFT, then rounds of (label -> reward model -> PPO).",
}


def _train_command(algo: str, help: str) -> None:
    def train(config: ConfigArg, set: SetOpt = None, resume: ResumeOpt = False) -> None:
        from reinforge.train.registry import run_from_cli

        run_from_cli(algo, config, set or [], resume)

    def rft(
        config: ConfigArg, set: SetOpt = None, resume: ResumeOpt = False, skip_audit: SkipAudit = False
    ) -> None:
        train(config, [*(set or []), *(["audit=false"] if skip_audit else [])], resume)

    app.command(algo, help=help)(user_errors(rft if algo == "rft" else train))


for _algo, _help in TRAIN_COMMANDS.items():
    _train_command(_algo, _help)


@app.command("config")
@user_errors
def config_keys(
    command: Annotated[
        str | None, typer.Argument(metavar="COMMAND", help="rft, sft, rm, ppo, dpo, rlhf or tune.")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Every command's keys as Markdown (docs/config.md).")
    ] = False,
) -> None:
    """List a command's config keys: type, default and meaning."""
    from reinforge.config import CONFIG_CLASSES
    from reinforge.config_docs import config_markdown, config_text

    if markdown:
        typer.echo(config_markdown(), nl=False)
    elif command is None:
        raise ReinforgeError(f"config: name a command, one of {', '.join(CONFIG_CLASSES)} (or --markdown)")
    else:
        typer.echo(config_text(command), nl=False)


@app.command("eval")
@user_errors
def eval_(
    model: Annotated[str, typer.Option(help="Model directory, hub id, or tiny:<task>:<size>.")],
    data: Annotated[Path, typer.Option(help="RFT JSONL file to evaluate on.")],
    grader: Annotated[str | None, typer.Option(help="Grader JSON/YAML (default: the task's grader).")] = None,
    task: Annotated[str | None, typer.Option(help="Built-in task whose grader to use.")] = None,
    samples: Annotated[int, typer.Option(help="Samples per prompt (pass@k uses all of them).")] = 1,
    temperature: Annotated[
        float,
        typer.Option(
            help="Sampling temperature of the pass@k samples (0: greedy, so all k are the same); "
            "the mean reward is always greedy."
        ),
    ] = 1.0,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per completion.")] = 32,
    output: Annotated[Path | None, typer.Option(help="Write per-row results as JSONL.")] = None,
    agent: Annotated[Path | None, typer.Option(help="YAML of RFT's agent: keys (tools, limits).")] = None,
) -> None:
    """Grade a model's outputs on a dataset: mean reward and pass@k (rows with tools: episodes)."""
    from reinforge.train.evaluate import eval_command

    eval_command(model, data, grader, task, samples, temperature, max_tokens, output, agent)


@app.command()
@user_errors
def grade(
    grader: Annotated[Path | None, typer.Option("--grader", help="Grader spec (.json or .yaml).")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of {item, sample} rows.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write graded rows.")] = None,
    validate: Annotated[
        Path | None, typer.Option("--validate", help="Only validate this grader spec.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel workers for python graders.")] = None,
    audit: Annotated[
        Path | None,
        typer.Option(metavar="CONFIG.yaml", help="Audit an RFT config's grader on its starting model."),
    ] = None,
    set: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="With --audit: print one JSON object.")] = False,
) -> None:
    """Grade samples with an OpenAI grader, validate a grader spec, or audit an RFT config's grader."""
    if audit or set or json_out:  # reward spread, zero-variance prompts, errors, hacking probes
        from reinforge.cli_audit import grade_audit

        grade_audit(audit, set or [], json_out, bool(grader or input or output or validate))
        return
    from reinforge.graders.command import grade_command

    grade_command(grader=grader, input=input, output=output, validate=validate, workers=workers)


class _ConfigOrVerb(TyperGroup):
    """``tune CONFIG.yaml ...`` is ``tune run CONFIG.yaml ...``: a first argument that is no verb is a config."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's vendored click.Context
        if args and args[0] not in self.commands and args[0] != "--help":
            args = ["run", *args]
        return super().parse_args(ctx, args)


tune_app = typer.Typer(
    cls=_ConfigOrVerb,
    no_args_is_help=True,
    help="Tune prompts and hyperparameters. Run a study: `tune CONFIG.yaml` (the same as `tune run "
    "CONFIG.yaml`). By hand: `tune ask STUDY`, `tune tell STUDY TRIAL VALUE`, `tune show STUDY`, where "
    "STUDY is the study's YAML config or its SQLite file.",
)
app.add_typer(tune_app, name="tune")
StudyArg = Annotated[
    str, typer.Argument(metavar="STUDY", help="The study's YAML config, or its SQLite file (FILE.db[:NAME]).")
]


@tune_app.command("run")
@user_errors
def tune_run(
    config: ConfigArg,
    set: SetOpt = None,
    resume: ResumeOpt = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Start even when the cost estimate exceeds the budget.")
    ] = False,
) -> None:
    """Run the study CONFIG.yaml describes: print the best trials, write trials.csv, plots, best.yaml."""
    from reinforge.tune.command import run_study

    run_study(config, overrides=set or [], resume=resume, yes=yes)


@tune_app.command("ask")
@user_errors
def tune_ask(study: StudyArg, set: SetOpt = None) -> None:
    """Start the next trial and print its parameters (the study is created on first use)."""
    from reinforge.tune import manual

    manual.ask(study, set or [])


@tune_app.command("tell", context_settings={"ignore_unknown_options": True})  # VALUE may be -0.5
@user_errors
def tune_tell(
    study: StudyArg,
    trial: Annotated[str, typer.Argument(metavar="TRIAL", help="The trial number `ask` printed.")],
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="The score: 0.8, or 0.8,120 for two objectives.")
    ],
    set: SetOpt = None,
) -> None:
    """Record a trial's score."""
    from reinforge.tune import manual

    manual.tell(study, trial, value, set or [])


@tune_app.command("show")
@user_errors
def tune_show(study: StudyArg, set: SetOpt = None) -> None:
    """Print the table of trials; write the exports and plots beside the study's file."""
    from reinforge.tune import manual

    manual.show(study, set or [])


@app.command()
@user_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    db: Annotated[str | None, typer.Option(help="Database URL (default: SQLite under --data-dir).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Uploaded files, checkpoints and the default DB.")] = Path(
        "reinforge-data"
    ),
    workers: Annotated[int, typer.Option(help="Job worker processes.")] = 1,
    model: Annotated[list[str] | None, typer.Option(help="Extra local model directories to serve.")] = None,
    allow_unsandboxed_python_graders: Annotated[
        bool,
        typer.Option(
            help="Where bubblewrap cannot run, run python graders anyway, without the OS sandbox (unsafe "
            "with untrusted keys); by default they are refused."
        ),
    ] = False,
    max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest file upload (413 beyond).")] = 512,
    max_json_mb: Annotated[int, typer.Option(min=1, help="Largest JSON request body (413 beyond).")] = 4,
    max_active_jobs_per_key: Annotated[
        int, typer.Option(min=1, help="Queued, running or paused jobs per key (429 beyond).")
    ] = 4,
    grader_runs_per_minute: Annotated[
        int, typer.Option(min=1, help="graders/run calls a minute per key (429 + Retry-After beyond).")
    ] = 600,
    chat_per_minute: Annotated[
        int, typer.Option(min=1, help="Chat completions a minute per key (429 + Retry-After beyond).")
    ] = 120,
    request_timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds for a request's head to arrive, and the longest gap in a body."),
    ] = 15.0,
    keep_alive: Annotated[
        int, typer.Option(min=1, help="Seconds an idle keep-alive connection stays open.")
    ] = 5,
) -> None:
    """Serve the OpenAI-compatible API, chat completions and feedback UI.

    The fine-tuning API (/v1) runs jobs on --workers processes; create a key first with `keys create`.
    """
    from reinforge.serve.command import serve_command

    serve_command(
        host=host,
        port=port,
        db=db,
        data_dir=data_dir,
        workers=workers,
        models=model or [],
        allow_unsandboxed_python_graders=allow_unsandboxed_python_graders,
        max_upload_mb=max_upload_mb,
        limits={
            "max_json_bytes": max_json_mb * 1024 * 1024,
            "max_active_jobs_per_key": max_active_jobs_per_key,
            "grader_runs_per_minute": grader_runs_per_minute,
            "chat_per_minute": chat_per_minute,
            "request_timeout_s": request_timeout,
            "keep_alive_s": keep_alive,
        },
    )


# `keys create|list|revoke` live in cli_keys.py (this file stays under 400 lines)
keys_app.command("create")(user_errors(cli_keys.keys_create))
keys_app.command("list")(user_errors(cli_keys.keys_list))
keys_app.command("revoke")(user_errors(cli_keys.keys_revoke))
app.command("worker")(user_errors(cli_worker.worker))  # job workers on any machine (cli_worker.py)
app.add_typer(cli_runs.runs_app(user_errors), name="runs")  # `runs compare RUN_DIR...` (cli_runs.py)


@data_app.command("to-sft")
@user_errors
def data_to_sft(
    input: Annotated[Path, typer.Argument(help='RFT JSONL: {"messages": [...], <reference fields>}.')],
    output: Annotated[Path, typer.Argument(help="SFT JSONL to write: the messages plus an assistant turn.")],
    field: Annotated[
        str, typer.Option(help="The reference field whose value becomes the assistant turn.")
    ] = "answer",
) -> None:
    """Turn RFT rows into SFT rows: append an assistant turn holding each row's reference field."""
    from reinforge.data.to_sft import convert_file

    n = convert_file(input, output, field)
    typer.echo(f"wrote {n} SFT rows to {output} (assistant turn = {field!r})", err=True)


@app.command()
@user_errors
def demo(
    which: Annotated[str, typer.Argument(help="rft (default), rlhf, agent or tune-agent")] = "rft",
    output_dir: Annotated[Path | None, typer.Option(help="Run directory (runs/demo[-WHICH]).")] = None,
    quick: Annotated[bool, typer.Option(help="A much shorter run, for smoke tests.")] = False,
    task: Annotated[str, typer.Option(help="rft: the task, reverse or addition.")] = "reverse",
    seed: Annotated[list[int] | None, typer.Option(help="rft: a seed; repeat it for the spread.")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="tune-agent: the tool model's directory.")] = None,
) -> None:
    """The demos. `demo`: RFT beats tuned SFT and a 4x larger tuned SFT model; `demo rlhf`: the RLHF loop."""
    if which == "rft":
        from reinforge.demo import run_demos

        run_demos(output_dir or Path("runs/demo"), seed or [0], quick, task)
    elif which == "rlhf":
        from reinforge.demo_rlhf import run_demo_rlhf

        run_demo_rlhf(output_dir or Path("runs/demo-rlhf"), quick=quick)
    elif which == "agent":  # a tiny model learns to call a calculator (HTTP, on loopback)
        from reinforge.demo_agent import run_demo_agent

        run_demo_agent(output_dir or Path("runs/demo-agent"), quick=quick, seed=(seed or [0])[0])
    elif which == "tune-agent":  # tune a served tool model's agent knobs, judged on held-out questions
        from reinforge.demo_tune_agent import run_demo_tune_agent

        run_demo_tune_agent(output_dir or Path("runs/demo-tune-agent"), model_dir, quick, (seed or [0])[0])
    else:
        raise ReinforgeError(f"demo {which!r}: unknown demo; choose rft, rlhf, agent or tune-agent")


def main() -> None:
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
        os.environ["REINFORGE_DEBUG"] = "1"
    app()


if __name__ == "__main__":
    main()
