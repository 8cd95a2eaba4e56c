"""The grader audit's maths: probes, zero-variance fraction, flags and warnings, on real graders grading
outputs written by hand (the sampling from a model: tests/train/test_grader_audit.py)."""

from __future__ import annotations

import re

import pytest

from reinforge.graders import from_spec
from reinforge.graders.audit import (
    LONG_ANSWER,
    REFUSAL,
    audit_report,
    probe_outputs,
    summary_lines,
    zero_variance_fraction,
)
from reinforge.graders.base import CallableGrader, Grader, make_sample
from reinforge.tasks import get_task


@pytest.mark.parametrize(
    "groups, expected",
    [
        ([], 0.0),  # no prompts: nothing to learn from, nothing to warn about
        ([[1.0, 1.0, 1.0, 1.0]], 1.0),  # every sample right: advantages all 0
        ([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], 0.5),  # one all-wrong prompt of two
        ([[0.25, 0.25], [0.5, 0.25], [1.0, 1.0], [0.0, 0.75]], 0.5),  # partial credit counts as a score too
        ([[0.3, 0.3 + 1e-9], [0.3, 0.31]], 0.5),  # float noise is the same score; 0.01 apart is not
        ([[0.0, 1.0], [1.0, 0.0], [0.5, 0.0]], 0.0),  # every prompt gives GRPO a signal
    ],
)
def test_zero_variance_fraction(groups, expected):
    assert zero_variance_fraction(groups) == pytest.approx(expected)


def test_probes_from_a_row():
    row = {
        "messages": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": [{"type": "text", "text": "37+48"}]},  # content as parts
        ],
        "tools": [],
        "answer": "85",
        "explanation": "carry the one",
    }
    probes = probe_outputs(row)
    assert probes["echo"] == "37+48"  # the user's turn, not the system prompt
    assert probes["field_names"] == "answer explanation"  # names only: no value leaks into a probe
    assert "85" not in "".join(probes.values()) and "carry" not in "".join(probes.values())
    assert probes["empty"] == "" and probes["refusal"] == REFUSAL and probes["long"] == LONG_ANSWER
    assert len(probes["long"]) > 3000 and len(set(probes["repeated_token"].split())) == 1


ADDITION_ROWS = get_task("addition").make_rows(8, seed=1)
# what a half-trained model writes for each prompt: 4 samples, right or a digit off
MODEL_OUTPUTS = [
    [a, a[:-1] + str((int(a[-1]) + 1) % 10), a, "1" + a] for a in (r["answer"] for r in ADDITION_ROWS)
]


def report_for(grader: Grader, rows: list[dict], outputs: list[list[str]]) -> dict:
    """The audit report of ``grader`` given each row's sampled ``outputs`` (what train/ does with a model)."""
    model = [grader.grade_batch([(row, make_sample(o)) for o in outs]) for row, outs in zip(rows, outputs)]
    probes: dict[str, list] = {}
    for row in rows:
        for name, text in probe_outputs(row).items():
            probes.setdefault(name, []).extend(grader.grade_batch([(row, make_sample(text))]))
    return audit_report(model, probes)


@pytest.mark.parametrize("task", ["addition", "reverse"])  # the demo's tasks
def test_the_demo_graders_pass(task):
    rows = get_task(task).make_rows(8, seed=1)
    # half-right outputs: the answer, one character dropped, the answer, one character too many
    outputs = [[a, a[:-1], a, a + a[-1]] for a in (r["answer"] for r in rows)]
    report = report_for(get_task(task).grader, rows, outputs)
    assert not any(p["flagged"] for p in report["probes"].values()), report["probes"]
    assert report["warnings"] == [] and report["errors"] == {}
    assert (report["prompts"], report["samples_per_prompt"], report["grades"]) == (8, 4, 32)
    assert report["zero_variance_fraction"] == 0.0


def test_a_grader_rewarding_length_is_flagged_by_the_long_answer():
    by_length = CallableGrader(lambda item, sample: min(1.0, len(sample["output_text"]) / 1000), "verbose")
    report = report_for(by_length, ADDITION_ROWS, MODEL_OUTPUTS)
    assert report["probes"]["long"]["flagged"] and report["probes"]["long"]["reward"] == 1.0
    assert not report["probes"]["empty"]["flagged"]  # a refusal is flagged too: it is longer than "85"
    assert any(
        w.startswith("a very long answer scores 1.00, above the model's 0.00: the grader rewards length")
        for w in report["warnings"]
    ), report["warnings"]


def test_a_grader_that_only_penalises_wrong_numbers_rewards_refusing():
    def no_wrong_number(item, sample):  # "penalise any number but the answer": saying nothing is safe
        return float(all(n == item["answer"] for n in re.findall(r"\d+", sample["output_text"])))

    report = report_for(CallableGrader(no_wrong_number), ADDITION_ROWS, MODEL_OUTPUTS)
    assert report["reward_mean"] == 0.5
    assert report["probes"]["refusal"] == {"reward": 1.0, "flagged": True, "errors": 0}
    assert "a refusal scores 1.00, above the model's 0.50: the grader rewards refusing" in report["warnings"]
    assert report["probes"]["empty"]["flagged"]  # silence is as safe as refusing


def test_a_string_check_on_the_topic_rewards_echoing_the_prompt():
    rows = [
        {"messages": [{"role": "user", "content": f"Summarise this note about {t}: ..."}], "topic": t}
        for t in ("tides", "bees", "glaciers", "volcanoes")
    ]
    mentions_topic = from_spec(
        {
            "type": "string_check",
            "name": "on_topic",
            "input": "{{sample.output_text}}",
            "reference": "{{item.topic}}",
            "operation": "ilike",
        }
    )
    outputs = [[f"A short summary of {r['topic']}.", "A short summary.", "Notes.", "Notes."] for r in rows]
    report = report_for(mentions_topic, rows, outputs)
    assert report["probes"]["echo"] == {"reward": 1.0, "flagged": True, "errors": 0}
    assert [name for name, p in report["probes"].items() if p["flagged"]] == ["echo"]
    assert (
        "echoing the prompt scores 1.00, above the model's 0.25: the grader rewards copying the prompt"
        in report["warnings"][0]
    )


def test_no_signal_and_errors_are_warned_in_plain_words():
    def exact_or_raise(item, sample):  # a grader that chokes on a non-number and is all-or-nothing
        return float(int(sample["output_text"]) == int(item["answer"]))

    outputs = [["1", "1", "1", "1"]] * 7 + [[r, r, "2", "2"] for r in [ADDITION_ROWS[7]["answer"]]]
    report = report_for(CallableGrader(exact_or_raise), ADDITION_ROWS, outputs)
    assert report["zero_variance_fraction"] == 7 / 8 and report["zero_variance_prompts"] == 7
    # every probe raised (none is a number): counted per probe, scored 0
    assert report["errors"] == {}  # the model's own samples all parsed
    assert report["probes"]["refusal"]["errors"] == len(ADDITION_ROWS)
    assert (
        "all 4 samples score the same on 7 of 8 prompts: the grader gives GRPO no signal; make it give "
        "partial credit or raise temperature"
    ) in report["warnings"]
    lines = summary_lines(report)
    assert len(lines) == 4 + len(report["warnings"]) and lines[0].startswith("grader audit: 8 prompts x 4")


def test_failed_grades_are_counted_by_kind():
    def raises_on_letters(item, sample):
        return float(int(sample["output_text"]) > 0)

    outputs = [["12", "x", "y", "7"]] * len(ADDITION_ROWS)
    report = report_for(CallableGrader(raises_on_letters), ADDITION_ROWS, outputs)
    assert report["errors"] == {"python_grader_runtime_error": 2 * len(ADDITION_ROWS)}
    assert report["failed_grades"] == 16 and report["reward_mean"] == 0.5
    assert report["first_error"]["message"].startswith("ValueError: invalid literal for int()")
    assert report["warnings"][0].startswith(
        "16 of 32 grades failed (python_grader_runtime_error 16) and count as 0: fix the grader or the data"
    )
