"""Write the own-task example's data: the earliest letter of a made-up word in alphabetical order, e.g.
"first letter in abc order: stone" -> "e".

RFT rows as OpenAI's RFT takes them: the prompt as messages, the answer in a reference field that the
grader reads (and that SFT can learn from: `assistant_field: answer`). Words are random lowercase
strings, so nothing about them can be remembered from elsewhere; validation words never occur in train.

    python examples/own-task/make_data.py        # rewrites train.jsonl (2000 rows) and valid.jsonl (100)
"""

import json
import random
import string
from pathlib import Path

HERE = Path(__file__).parent


def word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))


def row(w: str) -> dict:
    return {"messages": [{"role": "user", "content": f"first letter in abc order: {w}"}], "answer": min(w)}


def main(n_train: int = 2000, n_valid: int = 100, seed: int = 0) -> None:
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n_train + n_valid:
        w = word(rng)
        if w not in seen:
            seen.add(w)
            words.append(w)
    for name, part in (("train", words[:n_train]), ("valid", words[n_train:])):
        with open(HERE / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(row(w)) + "\n" for w in part)


if __name__ == "__main__":
    main()
