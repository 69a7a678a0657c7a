"""Close the hard-example loop: set `is_correct` on a pool from an evaluation of that pool by our evaluate.py.

    python evaluate.py --model_path <sft ckpt> --annotation_file <pool.json> --img_root <images> --output_dir out/
    python tools/set_is_correct.py --pool <pool.json> --results out/<pool stem>/results.json [--metric strict]
    python tools/sample_data.py --pool <pool>_scored.json ...

Results are matched to pool items by position (`id`) and checked against the question and image ids. `--metric`
picks the original (substring) or strict (answer span) correctness. An evaluation with `--num_samples` also sets
`sampled_right` (some sample right, strict metric), what `tools/sample_data.py --sample_types learnable` draws from.
Items the evaluation could not score (an `error` field, e.g. a missing image) stop the command: fix them and re-run
the evaluation with --resume.
Writes `--output` (default: `<pool stem>_scored.json` next to the pool) atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import ArgumentParser  # noqa: E402
from utils.data.annotations import load_annotations  # noqa: E402
from utils.io import InputError, atomic_write_json, read_json  # noqa: E402


def scored_pool(pool: list[dict], results: list[dict], results_path: str, metric: str = "original") -> list[dict]:
    """A copy of `pool` whose `is_correct` comes from `results` (see the module docstring).

    >>> pool = [{"image_ids": ["a"], "question": "Q?", "answer": "no", "is_correct": True}]
    >>> res = [{"id": 0, "image_ids": ["a"], "question": "Q?", "is_correct": False, "is_correct_strict": False}]
    >>> scored_pool(pool, res, "r.json")[0]["is_correct"]
    False
    """
    key = "is_correct" if metric == "original" else "is_correct_strict"
    if len(results) != len(pool):
        raise InputError(f"{results_path}: {len(results)} results for a pool of {len(pool)} items (same file?)")
    by_id = {}
    for n, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("id"), int) or key not in result:
            raise InputError(
                f"{results_path}: result {n}: field 'id' or '{key}' missing (not our evaluate.py output?)"
            )
        by_id[result["id"]] = result
    failed = [i for i, r in by_id.items() if r.get("error")]
    if failed:
        raise InputError(
            f"{results_path}: {len(failed)} items were not scored (error field), e.g. index {failed[0]}: "
            f"{by_id[failed[0]]['error']}"
        )
    scored = []
    for index, row in enumerate(pool):
        result = by_id.get(index)
        if result is None:
            raise InputError(f"{results_path}: no result with id {index}")
        if result.get("question") != row["question"] or result.get("image_ids") != row["image_ids"]:
            raise InputError(f"{results_path}: result id {index}: field 'question'/'image_ids' differs from the pool")
        row = {**row, "is_correct": bool(result[key])}
        if result.get("samples_correct_strict"):  # evaluate.py --num_samples: right in some sample (strict metric)
            row["sampled_right"] = any(result["samples_correct_strict"])
        scored.append(row)
    return scored


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="results.json of evaluate.py on the pool")
    parser.add_argument("--metric", choices=("original", "strict"), default="original")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    output = args.output or args.pool.with_name(f"{args.pool.stem}_scored.json")
    try:
        pool = load_annotations(args.pool)
        results = read_json(args.results)
        if not isinstance(results, dict) or not isinstance(results.get("results"), list):
            raise InputError(f"{args.results}: expected an evaluation results JSON with a 'results' list")
        scored = scored_pool(pool, results["results"], str(args.results), args.metric)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    atomic_write_json(output, scored)
    wrong = sum(not row["is_correct"] for row in scored)
    print(f"{output}: {len(scored)} items, {wrong} wrong ({args.metric} metric) -> hard candidates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
