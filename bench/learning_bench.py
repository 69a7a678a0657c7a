"""Does training learn? The demo's training (`tools/demo.sh` with LEARNING_ONLY=1: fresh tiny model and synthetic data,
SFT warm-up, hard-example mining, GRPO, evaluation before and after) over several seeds, one after another.

    .venv/bin/python bench/learning_bench.py [--seeds 0 1 2] [--out bench_out/learning]

Per seed: the SFT model's format share and strict accuracy (all test splits pooled, and on the questions the image
decides, next to the image-blind majority answer), the GRPO model's strict accuracy, and the GRPO training accuracy
reward's first- and last-quarter means. Then the mean and seed-to-seed spread (sample standard deviation) of each, so
GRPO's change can be read against the spread. Each seed takes about 3.5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.data.synthetic_cxr import decided_by_image  # noqa: E402
from utils.evaluation.learning import learning_outcome, spread  # noqa: E402

COLUMNS = (
    ("SFT format", lambda o: o["before"]["format"]),
    ("SFT strict", lambda o: o["before"]["strict"]),
    ("SFT img-decided", lambda o: o["before"]["decided_strict"]),
    ("majority", lambda o: o["before"]["decided_majority"]),
    ("GRPO strict", lambda o: o["after"]["strict"]),
    ("GRPO img-decided", lambda o: o["after"]["decided_strict"]),
    ("strict change", lambda o: o["strict_change"]),
    ("reward first", lambda o: o["reward_curve"][0]),
    ("reward last", lambda o: o["reward_curve"][1]),
)


def run_seed(seed: int, out: Path) -> dict:
    """Run the demo's training for one seed (its log in `<out>.log`) and read what it measured."""
    log = out.with_suffix(".log")
    env = {**os.environ, "OUT": str(out), "SEED": str(seed), "LEARNING_ONLY": "1"}
    with log.open("w") as handle:
        result = subprocess.run(
            ["bash", str(ROOT / "tools" / "demo.sh")], env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise SystemExit(f"learning_bench: seed {seed} failed (exit {result.returncode}); see {log}")
    outcome = learning_outcome(out, out / "synthetic-data", decided_by_image)
    if outcome is None or outcome["reward_curve"] is None:
        raise SystemExit(f"learning_bench: seed {seed}: evaluations or GRPO log missing in {out}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "learning")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes = {}
    for seed in args.seeds:
        print(f"seed {seed} ...", flush=True)
        outcomes[seed] = run_seed(seed, args.out / f"seed{seed}")
    width = max(len(name) for name, _ in COLUMNS)
    print(f"\n{'':{width}s} " + " ".join(f"{f'seed {s}':>8s}" for s in outcomes) + f" {'mean':>8s} {'spread':>8s}")
    table = {}
    for name, value in COLUMNS:
        values = [value(o) for o in outcomes.values()]
        table[name] = values
        cells = " ".join(f"{v:8.3f}" for v in values)
        print(f"{name:{width}s} {cells} {statistics.fmean(values):8.3f} {spread(values):8.3f}")
    change = table["strict change"]
    sft_spread = spread(table["SFT strict"])
    print(
        f"\nGRPO strict-accuracy change {statistics.fmean(change):+.3f} (per seed "
        + ", ".join(f"{c:+.3f}" for c in change)
        + f"); seed-to-seed spread of the SFT model's strict accuracy {sft_spread:.3f}, "
        f"of the change {spread(change):.3f}"
    )
    (args.out / "learning_bench.json").write_text(json.dumps({str(s): o for s, o in outcomes.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
