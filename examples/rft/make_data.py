"""Write the RFT example's data from the built-in addition task: 2000 training prompts, 200 validation.

Train and validation sums are disjoint (the task holds out ~20% of operand pairs by a hash), so the
validation reward measures what RFT generalises, not what it memorised.

    python examples/rft/make_data.py        # rewrites train.jsonl and valid.jsonl
"""

import json
from pathlib import Path

from reinforge.tasks import get_task

HERE = Path(__file__).parent

if __name__ == "__main__":
    task = get_task("addition")
    for name, n, split, seed in (("train", 2000, "train", 11), ("valid", 200, "validation", 12)):
        with open(HERE / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in task.make_rows(n, seed=seed, split=split))
