"""The documents run as written: every command of the ```bash blocks of README.md and docs/*.md, from a fresh
checkout, on the tiny model.

`README_PLAN` lists every command the documents show, in the order they are run here. Each is run as written, or
with the smaller sizes or stand-in paths named beside it (the tiny model, a few rows, a few steps), or is skipped
with the reason it cannot run on a CPU box. A documented command missing from the plan, or a planned one no longer
documented, fails `test_every_readme_command_is_planned`, so the plan cannot drift from the documents.

The checkout is a copy of the repository's tracked and untracked (not ignored) files, with mtimes kept so that
`make`'s venv stamp stays valid, and the project's `.venv` linked in: no build output of this working tree is seen.
The one thing it is given is what a GPU-node user brings: a remote-code SFT checkpoint (the tiny model written in
microsoft's layout by tests/test_convert_checkpoint.py), and the two small files that the KG commands read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP_RUN = "hard_uniform_1000_lr4e-6_g2_beta0.5"  # the one run of the small sweep below
README_RUN = "hard_uniform_5000_lr4e-6_g8_beta0.5/checkpoint-<N>"  # the README's example checkpoint
SMALL_SWEEP = {
    "SAMPLE_TYPES": "hard_uniform",
    "DATASET_SIZES": "1000",
    "NUM_GENERATIONS": "2",
    "PER_DEVICE_BATCH": "2",
    "MAX_STEPS": "2",
    "SAVE_STEPS": "2",
    "MAX_COMPLETION_LENGTH": "12",
    "DATALOADER_WORKERS": "0",
    "DATASET_NUM_PROC": "1",
}
SMALL_EVAL = {"MAX_NEW_TOKENS": "8", "BATCH_SIZE": "8"}
ONE_SPLIT = {**SMALL_EVAL, "SPLITS": "test_basic"}  # evaluate.sh on every split already ran once (the pool's)
# The README's 8 ranks become 1 for training and 2 for evaluation (2 cores here): torchrun's path is still taken.
ONE_RANK = {"NPROC_PER_NODE=8": "NPROC_PER_NODE=1"}
TWO_RANKS = {"NPROC_PER_NODE=8": "NPROC_PER_NODE=2"}
EVAL_ARGS = ["--max_new_tokens", "8", "--batch_size", "8"]


@dataclass(frozen=True)
class Run:
    """Run the README command with `env` added, `args` appended and each `replace` key swapped for its value."""

    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    replace: dict[str, str] = field(default_factory=dict)
    creates: tuple[str, ...] = ()  # files the command must have written, relative to the checkout
    prints: tuple[str, ...] = ()  # what its output must say
    never_prints: tuple[str, ...] = ()  # what it must not say


@dataclass(frozen=True)
class Skip:
    reason: str


# (README command, what this test does with it), in run order: later commands read what earlier ones wrote.
README_PLAN: list[tuple[str, Run | Skip]] = [
    ("make venv", Run(creates=(".venv/.installed",))),  # the stamp is fresh: it must install nothing
    ("make test", Skip("this suite is `make test`: running it from inside itself would recurse")),
    (
        "make demo",
        Run(
            env={
                "POOL_SIZE": "24",
                "TEST_SIZE": "4",
                "SFT_EPOCHS": "1",
                "GRPO_STEPS": "2",
                "HARD_SET_SIZE": "8",
                "MAX_NEW_TOKENS": "8",
                "PROGRESS_EVERY": "1",  # the SFT warm-up is a few seconds at this size; a user's takes minutes
                # a one-epoch model on 24 items may sample no right answer where it is wrong: nothing `learnable`
                "SAMPLE_TYPE": "hard_uniform",
            },
            # the long stages show progress instead of minutes of silence; the summary reports headroom before
            # GRPO and how often the reasoning contradicts its own answer
            prints=("   ... 1s: ", "Headroom on the pool before GRPO", "Reasoning that contradicts its own answer"),
            creates=(
                "demo_out/grpo/checkpoint-2/model.safetensors",
                "demo_out/token_prob/test_basic/report.html",
                "demo_out/grpo/completions.html",
                "demo_out/compare/test_basic.html",
                "demo_out/compare/test_region.html",
            ),
        ),
    ),
    (
        ".venv/bin/python tools/make_tiny_model.py --output checkpoints/tiny-phi4mm --seed 0",
        Run(creates=("checkpoints/tiny-phi4mm/model.safetensors",)),
    ),
    (
        ".venv/bin/python tools/make_demo_data.py --root data/MIMIC-VQA-CoT --seed 0 --test_size 32 --pool_size 240",
        Run(
            replace={"--test_size 32 --pool_size 240": "--test_size 4 --pool_size 24"},
            creates=("data/MIMIC-VQA-CoT/annotations/eval/valid_all_vqa.json",),
        ),
    ),
    (
        ".venv/bin/python -m rexkg extract --input refs.jsonl --output refs_kg.jsonl --field text",
        Run(creates=("refs_kg.jsonl",)),
    ),
    (
        ".venv/bin/python -m rexkg extract --input results.json --field generated_text --think --output pred_kg.jsonl",
        Run(creates=("pred_kg.jsonl",)),
    ),
    (".venv/bin/python -m rexkg metric --gt refs_kg.jsonl --pred pred_kg.jsonl", Run()),
    (".venv/bin/python -m rexkg evaluate --gold rexkg/data/guideline_dev.txt", Run()),
    (".venv/bin/python -m rexkg evaluate --gold rexkg/data/dev2_reports.txt", Run()),
    (".venv/bin/python -m rexkg evaluate --gold rexkg/data/dev3_comparisons.txt", Run()),
    (
        ".venv/bin/python tools/validate_data.py data/MIMIC-VQA-CoT/annotations/eval/*.json "
        "--img_root data/MIMIC-VQA-CoT/images",
        Run(),
    ),
    (
        "make venv && .venv/bin/pip install -r requirements-gpu.txt -c constraints.txt",
        Skip("flash-attn and DeepSpeed build against CUDA; a CPU box has none"),
    ),
    (
        ".venv/bin/python tools/convert_phi4mm_checkpoint.py checkpoints/restore_MIMIC_Think_phi4_ep1_lr6e-5 "
        "checkpoints/chex-phi4mm-sft",
        Run(
            creates=(
                "checkpoints/chex-phi4mm-sft/model.safetensors",
                "checkpoints/chex-phi4mm-sft/vision-lora/adapter_model.safetensors",
            )
        ),
    ),
    (
        "NPROC_PER_NODE=8 NUM_SAMPLES=8 RUN_TOKEN_PROB=0 SPLITS=valid_all MODEL_PATH=checkpoints/chex-phi4mm-sft "
        "OUTPUT_DIR=output/eval_pool ./evaluate.sh",
        Run(env=SMALL_EVAL, replace=TWO_RANKS, creates=("output/eval_pool/valid_all/results.json",)),
    ),
    (
        ".venv/bin/python tools/set_is_correct.py --pool data/MIMIC-VQA-CoT/annotations/eval/valid_all_vqa.json "
        "--results output/eval_pool/valid_all/results.json "
        "--output data/MIMIC-VQA-CoT/annotations/eval/pool_scored.json",
        Run(),
    ),
    (
        ".venv/bin/python tools/sample_data.py --pool data/MIMIC-VQA-CoT/annotations/eval/pool_scored.json",
        Run(args=["--allow-short"], creates=("data/MIMIC-VQA-CoT/annotations/hard_uniform/5000.jsonl",)),
    ),
    (".venv/bin/python tools/validate_data.py data/MIMIC-VQA-CoT/annotations/hard_uniform/5000.jsonl", Run()),
    (
        ".venv/bin/python bench/gpu_bench.py",
        Skip("the full-size model needs a GPU; tests/test_gpu_bench.py runs the same script with --tiny"),
    ),
    ("make venv-vllm", Skip("`make test` builds .venv-vllm before the suite; tests/test_vllm.py runs in it")),
    (
        "USE_VLLM=true NPROC_PER_NODE=8 ./train_loop.sh",
        Skip("8 GPUs; tests/test_vllm.py trains GRPO on vLLM through train.sh on this CPU, and checks the GPU plan"),
    ),
    (
        "INFER_BACKEND=vllm NPROC_PER_NODE=8 MODEL_PATH=checkpoints/chex-phi4mm-sft ./evaluate.sh",
        Skip("8 GPUs; tests/test_vllm.py evaluates on vLLM with evaluate_token_prob.py on this CPU"),
    ),
    (
        ".venv-vllm/bin/python bench/rollout_bench.py",
        Skip("a benchmark of minutes at 256 tokens; `make bench` runs it at 64"),
    ),
    # the plan of one of the sweep's runs: each run's dry run makes every check of a real one (seconds each)
    ("DRY_RUN=1 NPROC_PER_NODE=8 ./train_loop.sh", Run(env={"SAMPLE_TYPES": "hard_uniform", "DATASET_SIZES": "5000"})),
    (
        "NPROC_PER_NODE=8 ./train_loop.sh",
        Run(env=SMALL_SWEEP, replace=ONE_RANK, creates=(f"output/sweep/{SWEEP_RUN}/.done",)),
    ),
    (
        f"NPROC_PER_NODE=8 MODEL_PATH=output/sweep/{README_RUN} ./evaluate.sh",
        Run(
            env=ONE_SPLIT,
            replace={**ONE_RANK, README_RUN: f"{SWEEP_RUN}/checkpoint-2"},
            creates=(
                f"output/eval/{SWEEP_RUN}/checkpoint-2/test_basic/results.json",
                f"output/eval/{SWEEP_RUN}/checkpoint-2/test_basic/report.html",  # one generation, both outputs
            ),
            # the log names the crops evaluated at, not the checkpoint's own setting (36)
            prints=("image crops: dynamic_hd=4",),
            never_prints=("dynamic_hd=36",),
        ),
    ),
    (
        f"tools/get_kg_metric.sh output/eval/{README_RUN}/test_basic/results.json",
        Run(replace={README_RUN: f"{SWEEP_RUN}/checkpoint-2"}),
    ),
    (
        "swift rlhf --rlhf_type grpo --model checkpoints/tiny-phi4mm --model_type phi4_mm_native "
        "--external_plugins plugin.py --dataset train.jsonl --reward_funcs external_r1v_acc external_kg_jac ...",
        Skip("an excerpt ('...'): the complete command is the one train.sh prints and runs, run above"),
    ),
    (
        "FREEZE_NON_VISION_PARAMS=1 swift rlhf --rlhf_type grpo --model <checkpoint> --model_type phi4_mm_native "
        "--external_plugins plugin.py --reward_funcs external_r1v_acc external_kg_jac "
        "--tuner_type full --dataset train.jsonl --log_completions true ...",
        Skip("an excerpt ('...'): the complete command is the one train.sh prints and runs, run above"),
    ),
    (
        ".venv/bin/python evaluate.py --model_path checkpoints/<ckpt>",
        Run(
            args=EVAL_ARGS,
            replace={"<ckpt>": "chex-phi4mm-sft"},
            creates=("output/eval/chex-phi4mm-sft/test_region/results.json",),
        ),
    ),
    (
        ".venv/bin/python evaluate.py --model_path checkpoints/<ckpt> --annotation_file my.json "
        "--img_root data/MIMIC-VQA-CoT/images",
        Run(
            args=EVAL_ARGS,
            replace={"<ckpt>": "chex-phi4mm-sft"},
            creates=("output/eval/chex-phi4mm-sft/my/results.json",),
        ),
    ),
    (
        ".venv/bin/torchrun --nproc_per_node 8 evaluate.py --model_path checkpoints/<ckpt>",
        Run(
            args=[*EVAL_ARGS, "--output_dir", "output/eval_torchrun"],
            replace={"<ckpt>": "chex-phi4mm-sft", "--nproc_per_node 8": "--nproc_per_node 2"},
            creates=("output/eval_torchrun/test_basic/results.json",),
        ),
    ),
    ("tools/get_kg_metric.sh output/eval/<ckpt>/test_basic/results.json", Run(replace={"<ckpt>": "chex-phi4mm-sft"})),
    (
        ".venv/bin/python tools/plot_training.py output/<grpo run>",
        Run(replace={"<grpo run>": f"sweep/{SWEEP_RUN}"}, creates=(f"output/sweep/{SWEEP_RUN}/plots/rewards.png",)),
    ),
    (
        ".venv/bin/python evaluate_token_prob.py --model_path checkpoints/<ckpt> --splits test_basic",
        Run(
            args=EVAL_ARGS,
            replace={"<ckpt>": "chex-phi4mm-sft"},
            creates=("output/eval_token_prob/chex-phi4mm-sft/test_basic/report.html",),
        ),
    ),
    (
        ".venv/bin/python tools/compare_runs.py output/eval/<sft>/test_basic output/eval/<grpo>/test_basic "
        "--labels SFT GRPO",
        Run(
            replace={"<sft>": "chex-phi4mm-sft", "<grpo>": f"{SWEEP_RUN}/checkpoint-2"},
            creates=(f"output/eval/{SWEEP_RUN}/checkpoint-2/test_basic/compare.html",),
        ),
    ),
    (
        ".venv/bin/python tools/completions_report.py output/<grpo run>",
        Run(
            replace={"<grpo run>": f"sweep/{SWEEP_RUN}"},
            creates=(
                f"output/sweep/{SWEEP_RUN}/completions.html",
                f"output/sweep/{SWEEP_RUN}/completions_files/steps-0000.js",
            ),
        ),
    ),
]


def readme_commands(text: str) -> list[str]:
    """The commands of a Markdown text's ```bash blocks: continuation lines joined, comments dropped.

    >>> readme_commands("x\\n```bash\\n# a note\\nls -l \\\\\\n  /tmp   # why\\n```\\n")
    ['ls -l /tmp']
    """
    commands, block, pending = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash" and not block
            continue
        if not block:
            continue
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append(pending + line)
        pending = ""
    return commands


def documented_commands() -> list[str]:
    """Every command of the bash blocks of README.md and docs/*.md."""
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return [command for document in documents for command in readme_commands(document.read_text())]


def test_every_readme_command_is_planned():
    """A command added to a document must be run here (or skipped with its reason); a removed one leaves the plan."""
    shown = documented_commands()
    planned = [command for command, _ in README_PLAN]
    assert sorted(set(shown) - set(planned)) == [], "README commands this test does not run or skip"
    assert sorted(set(planned) - set(shown)) == [], "planned commands that the README no longer shows"


def _fresh_checkout(dest: Path) -> Path:
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)  # copy2 keeps mtimes: make's venv stamp stays newer than requirements
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def _remote_code_checkpoint(checkout: Path) -> None:
    """microsoft's remote-code layout of the SFT checkpoint, as the user downloads it (the tiny model's weights)."""
    from tests.test_convert_checkpoint import write_remote_checkpoint

    write_remote_checkpoint(
        checkout / "checkpoints/tiny-phi4mm", checkout / "checkpoints/restore_MIMIC_Think_phi4_ep1_lr6e-5"
    )


def _kg_inputs(checkout: Path) -> None:
    """The KG commands' inputs: an evaluation's results.json (the demo's) and its references, line for line."""
    results = checkout / "demo_out/eval_after/test_basic/results.json"
    shutil.copy(results, checkout / "results.json")
    rows = json.loads(results.read_text())["results"]
    (checkout / "refs.jsonl").write_text("".join(json.dumps({"text": row["explanation"]}) + "\n" for row in rows))


def _own_annotation_file(checkout: Path) -> None:
    shutil.copy(checkout / "data/MIMIC-VQA-CoT/annotations/eval/test_basic_vqa.json", checkout / "my.json")


# What a user has before running a command, for the commands that read files the README does not make.
USER_BRINGS = {
    ".venv/bin/python -m rexkg extract --input refs.jsonl --output refs_kg.jsonl --field text": _kg_inputs,
    ".venv/bin/python tools/convert_phi4mm_checkpoint.py checkpoints/restore_MIMIC_Think_phi4_ep1_lr6e-5 "
    "checkpoints/chex-phi4mm-sft": _remote_code_checkpoint,
    ".venv/bin/python evaluate.py --model_path checkpoints/<ckpt> --annotation_file my.json "
    "--img_root data/MIMIC-VQA-CoT/images": _own_annotation_file,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _shell_line(command: str, step: Run) -> str:
    for old, new in step.replace.items():
        assert old in command, f"replacement {old!r} not in {command!r}"
        command = command.replace(old, new)
    exports = " ".join(f"{key}={value}" for key, value in step.env.items())
    return f"{exports} {command} {' '.join(step.args)}".strip()


def test_readme_commands_run_from_a_fresh_checkout(tmp_path):
    checkout = _fresh_checkout(tmp_path / "checkout")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "COV_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    # torchrun's and evaluate.sh's rendezvous ports, free ones: other tests may run torchrun at the same time
    env.update(MASTER_PORT=str(_free_port()), PET_MASTER_PORT=str(_free_port()))
    ran, skipped = [], []
    for command, step in README_PLAN:
        if isinstance(step, Skip):
            skipped.append(f"{command}: {step.reason}")
            continue
        if command in USER_BRINGS:
            USER_BRINGS[command](checkout)
        line = _shell_line(command, step)
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", line], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        output = (done.stdout + done.stderr)[-4000:]
        assert done.returncode == 0, f"README command failed (exit {done.returncode}):\n  {line}\n{output}"
        for created in step.creates:
            assert (checkout / created).is_file(), f"{line}\n  did not write {created}\n{output}"
        for said in step.prints:
            assert said in done.stdout + done.stderr, f"{line}\n  did not print {said!r}\n{output}"
        for said in step.never_prints:
            assert said not in done.stdout + done.stderr, f"{line}\n  printed {said!r}\n{output}"
        ran.append(f"{time.monotonic() - started:6.1f} s  {line}")
    print("\nREADME commands run:\n  " + "\n  ".join(ran))
    print("skipped README commands:\n  " + "\n  ".join(skipped))
    assert len(ran) + len(skipped) == len(README_PLAN)
