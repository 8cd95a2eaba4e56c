"""Preference data: pairs, rankings and thumbs, read from JSONL with ``file:line`` errors.

Three row formats (one file may mix them):

- pair: ``{"prompt": ..., "chosen": "...", "rejected": "...", "margin": 1.0?}``
- ranking: ``{"prompt": ..., "responses": ["...", ...], "ranking": [2, 0, 1]}`` (indices into
  ``responses``, best first; a subset of at least two is allowed)
- thumbs: ``{"prompt": ..., "response": "...", "thumb": "up" | "down"}`` (or ``"label": true/false``);
  every up paired with every down of the same prompt gives a pair.

OpenAI's DPO rows, ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant",
"content": ...}], "non_preferred_output": [...]}``, are read as pairs too, so a file prepared for
OpenAI's DPO fine-tuning works unchanged.

``prompt`` is a string (one user turn) or a list of chat messages. Everything becomes a
:class:`Ranking` (a pair is a ranking of two); :func:`to_pairs` expands rankings to all their pairs
for Bradley-Terry, while Plackett-Luce uses the rankings whole.

>>> import json, tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "prefs.jsonl")
>>> rows = [{"prompt": "hi", "chosen": "hello!", "rejected": "go away"},
...         {"prompt": "hi", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]}]
>>> _ = open(p, "w").write("".join(json.dumps(r) + "\\n" for r in rows))
>>> [(q.chosen, q.rejected) for q in to_pairs(load_preferences(p))]
[('hello!', 'go away'), ('c', 'a'), ('c', 'b'), ('a', 'b')]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from reinforge.data.jsonl import iter_jsonl
from reinforge.data.rft import check_messages
from reinforge.errors import DataError

THUMB_VALUES = {
    "up": True,
    "down": False,
    "+1": True,
    "-1": False,
    True: True,  # also matches 1
    False: False,  # also matches 0
}


@dataclass
class Ranking:
    """Responses to one prompt, best first. ``source`` is ``file:line`` for error messages."""

    prompt: list[dict]  # chat messages
    responses: list[str]  # best first, >= 2, all distinct
    margin: float = 0.0  # pairs only: how much better chosen is (Bradley-Terry margin)
    source: str = ""


@dataclass
class PreferencePair:
    prompt: list[dict]
    chosen: str
    rejected: str
    margin: float = 0.0
    source: str = ""


@dataclass
class _Thumbs:
    prompt: list[dict]
    up: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    source: str = ""


def as_messages(prompt, where: str) -> list[dict]:
    """A prompt string becomes one user turn; a message list is checked as RFT messages are."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(f"{where}: 'prompt' is empty")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        check_messages(prompt, where)
        return prompt
    raise DataError(
        f"{where}: 'prompt' must be a string or a list of chat messages, got {type(prompt).__name__}"
    )


def prompt_text(prompt: list[dict]) -> str:
    """The prompt messages as one string (for encoders without a chat template, and for grouping)."""
    return "\n".join(str(m.get("content", "")) for m in prompt)


def _response(value, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: '{key}' is empty; remove the row or write the response")
    return value


def _assistant_text(value, where: str, key: str) -> str:
    """OpenAI DPO outputs are a list of messages; the (last) assistant message's text is the response."""
    if isinstance(value, str):
        return _response(value, where, key)
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{key}' must be a non-empty list of assistant messages")
    last = value[-1]
    if (
        not isinstance(last, dict)
        or last.get("role") != "assistant"
        or not isinstance(last.get("content"), str)
    ):
        raise DataError(f"{where}: '{key}' must end with an assistant message with string content")
    return _response(last["content"], where, key)


def openai_dpo_row(row: dict, where: str) -> dict:
    """OpenAI's DPO row -> the pair format (prompt messages, chosen, rejected)."""
    messages = (row.get("input") or {}).get("messages") if isinstance(row.get("input"), dict) else None
    if not isinstance(messages, list):
        raise DataError(f"{where}: 'input' must be an object with a 'messages' list")
    return {
        "prompt": messages,
        "chosen": _assistant_text(row.get("preferred_output"), where, "preferred_output"),
        "rejected": _assistant_text(row.get("non_preferred_output"), where, "non_preferred_output"),
    }


def parse_preference_row(row: dict, where: str) -> Ranking | tuple[list[dict], str, bool]:
    """One JSONL row -> a Ranking (pair or ranking) or a thumb ``(prompt, response, is_up)``."""
    if "input" in row and "preferred_output" in row:
        row = openai_dpo_row(row, where)
    if "prompt" not in row:
        raise DataError(f"{where}: row has no 'prompt'")
    prompt = as_messages(row["prompt"], where)
    if "chosen" in row or "rejected" in row:
        chosen = _response(row.get("chosen"), where, "chosen")
        rejected = _response(row.get("rejected"), where, "rejected")
        if chosen.strip() == rejected.strip():
            raise DataError(
                f"{where}: 'chosen' and 'rejected' are the same text (a tie); drop ties from pair data"
            )
        margin = row.get("margin", 0.0)
        if not isinstance(margin, int | float) or margin < 0:
            raise DataError(f"{where}: 'margin' must be a number >= 0, got {margin!r}")
        return Ranking(prompt, [chosen, rejected], float(margin), where)
    if "responses" in row or "ranking" in row:
        responses, ranking = row.get("responses"), row.get("ranking")
        if not isinstance(responses, list) or len(responses) < 2:
            raise DataError(f"{where}: 'responses' must be a list of at least 2 strings")
        responses = [_response(r, where, f"responses[{i}]") for i, r in enumerate(responses)]
        if not isinstance(ranking, list) or len(ranking) < 2 or not all(isinstance(i, int) for i in ranking):
            raise DataError(f"{where}: 'ranking' must be a list of at least 2 response indices, best first")
        for i in ranking:
            if not 0 <= i < len(responses):
                raise DataError(
                    f"{where}: ranking index {i} is out of range for {len(responses)} responses "
                    f"(indices are 0-based)"
                )
        if len(set(ranking)) != len(ranking):
            dup = next(i for i in ranking if ranking.count(i) > 1)
            raise DataError(
                f"{where}: ranking lists index {dup} twice; each response appears once (ties are not allowed)"
            )
        ranked = [responses[i] for i in ranking]
        seen: dict[str, int] = {}
        for i, text in zip(ranking, ranked):
            if text.strip() in seen:
                raise DataError(
                    f"{where}: responses[{seen[text.strip()]}] and responses[{i}] are the same text "
                    f"(a duplicate cannot be ranked against itself)"
                )
            seen[text.strip()] = i
        return Ranking(prompt, ranked, 0.0, where)
    if "response" in row:
        response = _response(row["response"], where, "response")
        raw = row.get("thumb", row.get("label"))
        if raw not in THUMB_VALUES or isinstance(raw, float):
            raise DataError(
                f"{where}: thumbs rows need 'thumb': \"up\" or \"down\" (or 'label': true/false), got {raw!r}"
            )
        return prompt, response, THUMB_VALUES[raw]
    raise DataError(
        f"{where}: not a preference row: expected chosen/rejected, responses/ranking, "
        f"or response/thumb keys; got {sorted(row)}"
    )


def load_preferences(path: str | Path, allow_duplicates: bool = False) -> list[Ranking]:
    """Read pairs, rankings and thumbs from one JSONL file as rankings (best first).

    Errors (``file:line: ...``) for ties, empty responses, out-of-range or repeated ranking indices,
    and exact duplicate rows (``allow_duplicates=True`` keeps them, e.g. two annotators agreeing).
    """
    out: list[Ranking] = []
    thumbs: dict[str, _Thumbs] = {}
    seen: dict[tuple, str] = {}
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        parsed = parse_preference_row(row, where)
        key: tuple  # a row's identity, to find duplicates
        if isinstance(parsed, Ranking):
            key = (prompt_text(parsed.prompt), tuple(parsed.responses))
            item = parsed
        else:
            prompt, response, up = parsed
            key = (prompt_text(prompt), response, up)
            group = thumbs.setdefault(prompt_text(prompt), _Thumbs(prompt, source=where))
            (group.up if up else group.down).append(response)
            item = None
        if key in seen and not allow_duplicates:
            raise DataError(f"{where}: duplicate of {seen[key]}; remove one (or pass allow_duplicates)")
        seen[key] = where
        if item is not None:
            out.append(item)
    for group in thumbs.values():
        for good, bad in itertools.product(group.up, group.down):
            if good.strip() != bad.strip():
                out.append(Ranking(group.prompt, [good, bad], 0.0, group.source))
    if not out:
        raise DataError(f"{path}: no preference pairs (thumbs need an up and a down for the same prompt)")
    return out


def to_pairs(rankings: list[Ranking]) -> list[PreferencePair]:
    """Every ranking of K responses -> its K(K-1)/2 (better, worse) pairs, in order."""
    pairs = []
    for r in rankings:
        for i, j in itertools.combinations(range(len(r.responses)), 2):
            pairs.append(PreferencePair(r.prompt, r.responses[i], r.responses[j], r.margin, r.source))
    return pairs


def pair_rows(pairs: list[PreferencePair]) -> list[dict]:
    """Pairs as JSONL rows (the pair format), e.g. to save the labels a round collected."""
    return [
        {
            "prompt": p.prompt,
            "chosen": p.chosen,
            "rejected": p.rejected,
            **({"margin": p.margin} if p.margin else {}),
        }
        for p in pairs
    ]


def load_many(paths: list[str | Path]) -> list[Ranking]:
    """Concatenate several preference files (each checked on its own)."""
    out: list[Ranking] = []
    for p in paths:
        out += load_preferences(p)
    return out
