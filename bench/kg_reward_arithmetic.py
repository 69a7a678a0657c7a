"""How `external_kg_jac`'s rule for graphs without relations moves the reward on real responses.

    .venv/bin/python bench/kg_reward_arithmetic.py demo_out/eval_{before,after}/*/results.json

Scores every response of the given evaluations against its own reference twice, with the same graphs: the
original's arithmetic (entity and relation Jaccard averaged, two empty relation sets counting 1.0:
`kg_jaccard_original`) and the reward's (`kg_jaccard`: the entities alone decide when neither side has a relation).
Prints the mean of each and how many responses moved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.scoring.kg_reward import get_kg_scorer, kg_jaccard, kg_jaccard_original  # noqa: E402


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    rows = [row for path in paths for row in json.loads(Path(path).read_text())["results"] if not row.get("error")]
    details = get_kg_scorer("rules").score([r["generated_text"] for r in rows], [r["explanation"] for r in rows])
    original = [kg_jaccard_original(d) for d in details]
    now = [kg_jaccard(d) for d in details]
    moved = [(a, b) for a, b in zip(original, now) if a != b]
    no_relations = sum(1 for d in details if not d["num_relations"] and not d["num_reference_relations"])
    print(f"responses: {len(rows)} from {len(paths)} evaluations; neither side has a relation: {no_relations}")
    print(f"mean external_kg_jac, original arithmetic: {sum(original) / len(rows):.3f}")
    print(f"mean external_kg_jac, entities alone without relations: {sum(now) / len(rows):.3f}")
    print(f"moved: {len(moved)} ({sum(b < a for a, b in moved)} down, {sum(b > a for a, b in moved)} up)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
