"""train.sh and train_loop.sh: dry-run commands for the paper's recipe, multi-GPU and DeepSpeed; a real one-step run;
a sweep killed mid-run and resumed; the missing-dataset error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

RECIPE = (
    "--rlhf_type grpo --model {model} --model_type phi4_mm_native --external_plugins {repo}/plugin.py "
    "--dataset {dataset} --output_dir {output} --add_version false --tuner_type full --torch_dtype {dtype} "
    "--attn_impl {attn} --reward_funcs external_r1v_acc external_kg_jac --learning_rate 4e-6 --num_generations 8 "
    "--beta 0.5 --epsilon 0.2 --num_train_epochs 1 --max_steps -1 --warmup_ratio 0.1 --per_device_train_batch_size 8 "
    "--gradient_accumulation_steps 1 --max_completion_length 256 --max_length 4096 --temperature 0.9 "
    "--dynamic_sample true --max_resample_times 4 --use_vllm false --save_steps 125 --save_total_limit 5 "
    "--logging_steps 1 --log_completions true --report_to none --check_model false --seed 42 "
    "--dataloader_num_workers 4 --dataset_num_proc 4"
)


def _run(script: str, env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    unset = ("NPROC_PER_NODE", "NNODES", "DEEPSPEED", "RESUME", "OMP_NUM_THREADS")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        ["bash", str(REPO / script), *args], capture_output=True, text=True, env={**clean, **env}, **kwargs
    )


def _planned_command(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("+ "))


def _expected(recipe: dict, dtype: str = "float32", attn: str = "sdpa") -> str:
    dataset = Path(recipe["DATASET"])
    paths = {
        "model": recipe["MODEL_PATH"],
        "dataset": dataset,
        "output": REPO / "output" / "grpo" / f"{dataset.parent.name}_{dataset.stem}",
    }
    return RECIPE.format(repo=REPO, dtype=dtype, attn=attn, **paths)


@pytest.fixture(scope="module")
def recipe(tiny_model, demo_data, tmp_path_factory) -> dict:
    """A checkpoint and a GRPO set that exist: a dry run checks them as the real run does."""
    from tools.sample_data import main as sample

    root = tmp_path_factory.mktemp("recipe") / "data"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(demo_data / "images")
    pool = demo_data / "annotations" / "eval" / "valid_all_vqa.json"
    assert sample(["--data_root", str(root), "--pool", str(pool), "--sample_types", "uniform", "--sizes", "8"]) == 0
    return {"MODEL_PATH": str(tiny_model), "DATASET": str(root / "annotations" / "uniform" / "8.jsonl")}


@pytest.fixture(scope="module")
def default_plan(recipe) -> subprocess.CompletedProcess:
    """One dry run of the paper's recipe (every check of a real run costs seconds): the tests that read it share it."""
    return _run("train.sh", {**recipe, "DRY_RUN": "1"})


def test_dry_run_prints_the_papers_recipe(recipe, default_plan):
    completed = default_plan
    assert completed.returncode == 0, completed.stderr
    assert "precision float32, attention sdpa, device cpu" in completed.stdout  # CPU: float32 + sdpa, and it says so
    swift = REPO / ".venv" / "bin" / "swift"
    assert _planned_command(completed.stdout) == (
        "+ FREEZE_NON_VISION_PARAMS=1 FREEZE_TRAIN_LM_HEAD=0 DYNAMIC_SAMPLE_MIN_STD=0.06 DYNAMIC_HD=4 "
        f"OMP_NUM_THREADS={os.cpu_count()} {swift} rlhf {_expected(recipe)}"
    )
    # the dry run made the real run's checks, and wrote nothing
    assert "pre-flight check of" in completed.stdout and "check_prompt_length:" in completed.stdout
    assert not (REPO / "output" / "grpo" / "uniform_8").exists()


def test_dry_run_shows_a_gpu_nodes_plan_from_a_cpu_machine(recipe):
    """TARGET=gpu: the plan the GPU node will run, from a login node; a real run refuses the mismatch."""
    completed = _run("train.sh", {**recipe, "DRY_RUN": "1", "TARGET": "gpu", "NPROC_PER_NODE": "8"})
    assert completed.returncode == 0, completed.stderr
    assert "precision bfloat16, attention flash_attention_2, device cuda (TARGET=gpu)" in completed.stdout
    plan = _planned_command(completed.stdout)
    assert "--torch_dtype bfloat16 --attn_impl flash_attention_2" in plan
    assert "gloo" not in plan and "ACCELERATE_USE_CPU" not in plan  # nccl: ms-swift's default on CUDA
    real = _run("train.sh", {**recipe, "TARGET": "gpu"})
    assert real.returncode == 2 and "this one is cpu" in real.stderr


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"NUM_GENERATIONS": "3"}, "NUM_GENERATIONS=3: a step holds PER_DEVICE_BATCH 8 x 1 process(es)"),
        ({"REWARD_FUNCS": "external_r1v_acc external_kg_jacc"}, "did you mean external_kg_jac?"),
        ({"REWARD_WEIGHTS": "1"}, "REWARD_WEIGHTS=1: 1 weight for 2 rewards"),
        ({"LEARNING_RATE": "1e-5"}, "LEARNING_RATE=1e-5: train.sh has no such knob; did you mean LR?"),
        ({"MODEL_PATH": "/nonexistent/ckpt"}, "MODEL_PATH=/nonexistent/ckpt: no checkpoint there"),
        ({"DATASET": "/nonexistent/set.jsonl"}, "DATASET=/nonexistent/set.jsonl: no such file"),
    ],
)
@pytest.mark.parametrize("dry_run", ["0", "1"])
def test_what_the_real_run_rejects_the_dry_run_rejects_first(recipe, knobs, message, dry_run, tmp_path):
    """Each of these used to print a normal plan under DRY_RUN=1; the real run died later in ms-swift or trained
    with the knob ignored. Both now stop before any model loads, and write nothing."""
    out = tmp_path / "out"
    env = {**recipe, **knobs, "DRY_RUN": dry_run, "OUTPUT_DIR": str(out), "LOG_DIR": str(out)}
    completed = _run("train.sh", env, timeout=120)
    assert completed.returncode == 2, completed.stdout[-2000:]
    assert message in completed.stderr
    assert not out.exists()


def test_an_annotation_file_as_dataset_names_the_converter(recipe, demo_data, tmp_path):
    annotations = demo_data / "annotations" / "eval" / "test_basic_vqa.json"
    out = tmp_path / "out"
    completed = _run("train.sh", {**recipe, "DATASET": str(annotations), "DRY_RUN": "1", "OUTPUT_DIR": str(out)})
    assert completed.returncode == 2
    assert "an annotation file" in completed.stdout and "tools/convert_to_grpo.py" in completed.stdout
    assert completed.stdout.count("test_basic_vqa.json: ") == 1  # one line, not one per row


def test_dry_run_multi_gpu_bf16_flash_attention_and_deepspeed(recipe):
    env = {
        **recipe,
        "DRY_RUN": "1",
        "NPROC_PER_NODE": "8",
        "NNODES": "2",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.1",
        "TORCH_DTYPE": "bfloat16",
        "ATTN_IMPL": "flash_attention_2",
        "DEEPSPEED": "zero3",
    }
    completed = _run("train.sh", env, "--", "--gradient_checkpointing", "true")
    assert completed.returncode == 0, completed.stderr
    swift = REPO / ".venv" / "bin" / "swift"
    config = REPO / "tools" / "deepspeed" / "zero3.json"
    assert _planned_command(completed.stdout) == (
        "+ FREEZE_NON_VISION_PARAMS=1 FREEZE_TRAIN_LM_HEAD=0 DYNAMIC_SAMPLE_MIN_STD=0.06 DYNAMIC_HD=4 "
        f"OMP_NUM_THREADS={max(1, os.cpu_count() // 8)} "
        "NPROC_PER_NODE=8 NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 "
        # this machine has no CUDA: DDP over gloo, with accelerate told the ranks are CPUs (see train.sh)
        f"ACCELERATE_USE_CPU=true {swift} rlhf "
        f"{_expected(recipe, 'bfloat16', 'flash_attention_2')} --deepspeed {config} --ddp_backend gloo "
        "--gradient_checkpointing true"
    )
    assert json.loads(config.read_text())["zero_optimization"]["stage"] == 3
    zero2 = _run("train.sh", {**recipe, "DRY_RUN": "1", "DEEPSPEED": "zero2"})
    assert f"--deepspeed {REPO / 'tools' / 'deepspeed' / 'zero2.json'}" in _planned_command(zero2.stdout)
    assert _run("train.sh", {**recipe, "DRY_RUN": "1", "DEEPSPEED": "zero9"}).returncode == 2


def _tiny_env(tiny_model: Path, tmp_path: Path) -> dict:
    return {
        "MODEL_PATH": str(tiny_model),
        "MAX_STEPS": "1",
        "PER_DEVICE_BATCH": "4",
        "NUM_GENERATIONS": "4",
        "MAX_COMPLETION_LENGTH": "12",
        "DATALOADER_WORKERS": "0",
        "DATASET_NUM_PROC": "1",
        "SAVE_STEPS": "1",
        "LOG_DIR": str(tmp_path / "logs"),
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def sampled_root(demo_data, tmp_path) -> Path:
    from tools.sample_data import main as sample

    root = tmp_path / "data"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(demo_data / "images")
    pool = demo_data / "annotations" / "eval" / "valid_all_vqa.json"
    assert (
        sample(
            [
                "--data_root",
                str(root),
                "--pool",
                str(pool),
                "--sample_types",
                "uniform",
                "--sizes",
                "8",
                "12",
                "--allow-short",
            ]
        )
        == 0
    )
    return root


def test_one_real_step_through_train_sh(tiny_model, sampled_root, tmp_path):
    env = {
        **_tiny_env(tiny_model, tmp_path),
        "DATASET": str(sampled_root / "annotations" / "uniform" / "8.jsonl"),
        "OUTPUT_DIR": str(tmp_path / "run"),
    }
    completed = _run("train.sh", env, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint-1" / "vision-lora" / "adapter_model.safetensors").is_file()
    logged = [json.loads(line) for line in (tmp_path / "run" / "logging.jsonl").read_text().splitlines()]
    assert any("rewards/KGJaccard/mean" in row for row in logged)
    assert "FREEZE_NON_VISION_PARAMS: 16 tensors" in completed.stdout  # the recipe's freezing hook ran
    assert "image crops: dynamic_hd=4" in completed.stdout  # the knob reached the model's processor
    assert json.loads((tmp_path / "run" / "prompt_lengths.json").read_text())["dynamic_hd"] == 4
    saved = json.loads((tmp_path / "run" / "checkpoint-1" / "chex_run.json").read_text())
    assert saved["dynamic_hd"] == 4  # recorded with the checkpoint
    logs = list((tmp_path / "logs").glob("train_*.log"))
    assert len(logs) == 1 and "global_step/max_steps" in logs[0].read_text()


def test_prompts_longer_than_max_length_stop_the_run_with_the_numbers(tiny_model, sampled_root, tmp_path):
    env = {
        **_tiny_env(tiny_model, tmp_path),
        "DATASET": str(sampled_root / "annotations" / "uniform" / "8.jsonl"),
        "OUTPUT_DIR": str(tmp_path / "run"),
        "MAX_LENGTH": "40",
    }
    completed = _run("train.sh", env, timeout=300)
    assert completed.returncode == 2
    assert "prompts exceed MAX_LENGTH=40" in completed.stdout + completed.stderr
    assert "longest prompt" in completed.stdout and "dynamic_hd=4" in completed.stdout
    assert not (tmp_path / "run" / "logging.jsonl").exists()  # no training started
    from tools.check_prompt_length import main as check

    dataset = env["DATASET"]
    args = ["--model", str(tiny_model), "--dataset", dataset, "--max_length", "40", "--dynamic_hd", "4"]
    assert check(args) == 2 and check([*args, "--allow-truncation"]) == 0  # ALLOW_TRUNCATION=1 only reports


def _processes_writing(run_dir: Path, within: float) -> list[str]:
    """Command lines of live processes that name `run_dir`, after waiting up to `within` seconds for them to go."""
    deadline = time.time() + within
    while True:
        alive = []
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(run_dir) in cmdline and proc.name != str(os.getpid()):
                alive.append(f"{proc.name}: {cmdline[:160]}")
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.2)


def _start_sweep(env: dict) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if k not in ("NPROC_PER_NODE", "NNODES", "DEEPSPEED", "RESUME")}
    return subprocess.Popen(
        ["bash", str(REPO / "train_loop.sh")],
        env={**clean, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _one_run_sweep(tiny_model: Path, sampled_root: Path, tmp_path: Path, **knobs: str) -> tuple[dict, Path]:
    """The environment of a sweep of one tiny run (uniform, 12 rows), and that run's folder."""
    env = {
        **_tiny_env(tiny_model, tmp_path),
        "DATA_ROOT": str(sampled_root),
        "SAMPLE_TYPES": "uniform",
        "DATASET_SIZES": "12",
        "OUTPUT_ROOT": str(tmp_path / "sweep"),
        **knobs,
    }
    return env, tmp_path / "sweep" / "uniform_12_lr4e-6_g4_beta0.5"


def test_a_second_trainer_on_a_held_folder_refuses_naming_the_holder(tiny_model, sampled_root, tmp_path):
    """The lock a job holds (and every child inherits) keeps a second trainer out, naming the holder."""
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".train.pid").write_text("train.sh pid 4242 (process group 4242), started earlier")
    with open(run_dir / ".train.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running job's process tree holds it
        env = {
            **_tiny_env(tiny_model, tmp_path),
            "DATASET": str(sampled_root / "annotations" / "uniform" / "12.jsonl"),
            "OUTPUT_DIR": str(run_dir),
        }
        second = _run("train.sh", env, timeout=120)
    assert second.returncode == 2 and "being written by another training job (train.sh pid 4242" in second.stderr
    assert not (run_dir / "logging.jsonl").exists()


def test_kill_9_of_the_sweep_takes_its_training_with_it_and_the_sweep_resumes(tiny_model, sampled_root, tmp_path):
    env, run_dir = _one_run_sweep(tiny_model, sampled_root, tmp_path, MAX_STEPS="6")
    sweep = _start_sweep(env)
    deadline = time.time() + 300
    while time.time() < deadline and sweep.poll() is None:
        if (run_dir / "checkpoint-1" / "trainer_state.json").is_file():  # the trainer writes it last
            sweep.kill()  # kill -9 of the sweep's own process only, as a user or a scheduler does
            break
        time.sleep(0.05)
    sweep.wait()
    assert sweep.returncode == -signal.SIGKILL and not (run_dir / ".done").exists()  # really killed mid-run
    assert _processes_writing(run_dir, within=15) == []  # train.sh, swift and the trainer went with it
    rows = len((run_dir / "logging.jsonl").read_text().splitlines())
    time.sleep(2)
    assert len((run_dir / "logging.jsonl").read_text().splitlines()) == rows  # nothing writes any more
    assert not (run_dir / ".train.pid").exists() or _processes_writing(run_dir, within=0) == []
    resumed = _run("train_loop.sh", env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert ": resuming" in resumed.stdout and "--resume_from_checkpoint" in resumed.stdout
    assert (run_dir / ".done").exists() and (run_dir / "checkpoint-6").is_dir()
    assert not (run_dir / ".train.pid").exists()  # a finished job leaves no pid behind
    table = resumed.stdout.splitlines()
    header = next(i for i, line in enumerate(table) if line.split()[:2] == ["run", "status"])
    assert "KGJaccard" in table[header] and "R1VAccuracy" in table[header]
    assert table[header + 1].split()[:2] == ["uniform_12_lr4e-6_g4_beta0.5", "done"]
    again = _run("train_loop.sh", env, timeout=120)
    assert again.returncode == 0 and "finished earlier, skipped" in again.stdout


def test_sweep_with_missing_datasets_lists_them_all_and_trains_nothing(sampled_root, tmp_path):
    env = {
        "DATA_ROOT": str(sampled_root),
        "SAMPLE_TYPES": "uniform hard_uniform",
        "DATASET_SIZES": "8 99",
        "OUTPUT_ROOT": str(tmp_path / "sweep"),
    }
    completed = _run("train_loop.sh", env)
    assert completed.returncode == 2
    missing = [line.strip() for line in completed.stderr.splitlines() if line.startswith("  ")]
    root = sampled_root / "annotations"
    assert missing == [
        str(root / "uniform" / "99.jsonl"),
        str(root / "hard_uniform" / "8.jsonl"),
        str(root / "hard_uniform" / "99.jsonl"),
    ]
    assert not (tmp_path / "sweep").exists()


def test_recipe_defaults_leave_at_least_four_checkpoints_on_eight_gpus(default_plan):
    from tools.gpu_plan import RecipePlan, parameter_counts, schedule

    command = _planned_command(default_plan.stdout).split()
    save_steps = int(command[command.index("--save_steps") + 1])
    save_total_limit = int(command[command.index("--save_total_limit") + 1])
    plan = RecipePlan(gpus=8, samples=5000, num_generations=8, per_device_batch=8, save_steps=save_steps)
    assert schedule(plan)["checkpoints"] >= 4 and save_total_limit >= 4
    # The LoRA sizes microsoft published for Phi-4-multimodal: vision ~370M, speech ~460M parameters.
    counts = parameter_counts()
    assert abs(counts["vision_lora"] / 370e6 - 1) < 0.02 and abs(counts["speech_lora"] / 460e6 - 1) < 0.02


def test_the_dry_run_projects_the_runs_hours_from_a_gpu_measurement(recipe, tmp_path, capsys):
    """With bench/gpu_bench.py's JSON (GPU_BENCH) the plan says the run's hours; without one, that none is measured."""
    bench = {
        "settings": {"tiny": False, "completions_per_step": 8, "completion_tokens": 256, "dynamic_hd": 4},
        "step": {"step_s": 36.0},
        "machine": {"gpu": "NVIDIA H200"},
    }
    measured = tmp_path / "gpu_bench.json"
    measured.write_text(json.dumps(bench))
    rows = len(Path(recipe["DATASET"]).read_text().splitlines())
    # 2 GPUs x 8 completions a step, 8 generations per prompt, 2 epochs: rows x 8 x 2 / 16 = rows steps of 36 s
    knobs = {**recipe, "DRY_RUN": "1", "GPU_BENCH": str(measured), "NPROC_PER_NODE": "2", "EPOCHS": "2"}
    completed = _run("train.sh", knobs)
    assert completed.returncode == 0, completed.stderr
    hours = rows * 36 / 3600
    assert f"train.sh: time: {rows} steps x 36.0 s (bench/gpu_bench.py on NVIDIA H200) = {hours:.1f} h" in (
        completed.stdout
    )

    from tools.gpu_plan import main as gpu_plan

    gpu_plan(["--bench", str(tmp_path / "none.json"), "--samples", "10"])
    assert f"time: not measured (no {tmp_path / 'none.json'}; run bench/gpu_bench.py" in capsys.readouterr().out
    gpu_plan(["--bench", str(measured), "--samples", "10", "--completion_tokens", "128"])
    assert "no projection: the bench measured another step (completion tokens 128 (measured 256))" in (
        capsys.readouterr().out
    )


def _dry_sweep(tiny_model: Path, sampled_root: Path, tmp_path: Path, sizes: str) -> dict:
    """The environment of a dry run of the sweep over the `uniform` sets of `sizes`."""
    return {
        "MODEL_PATH": str(tiny_model),
        "DATA_ROOT": str(sampled_root),
        "SAMPLE_TYPES": "uniform",
        "DATASET_SIZES": sizes,
        "DRY_RUN": "1",
        "OUTPUT_ROOT": str(tmp_path / "sweep"),
    }


def test_a_short_set_is_marked_in_the_sweep_plan_and_table(tiny_model, sampled_root, tmp_path):
    """A set drawn with --allow-short holds fewer rows than its name says: the sweep shows the real count."""
    sets = sampled_root / "annotations" / "uniform"
    rows = len((sets / "12.jsonl").read_text().splitlines())
    (sets / "1000.jsonl").write_text((sets / "12.jsonl").read_text())  # what --allow-short writes for 1000
    # a set drawn from a pool scored with samples says how many of its rows the SFT model can learn
    manifest = json.loads((sets / "12.manifest.json").read_text())
    (sets / "12.manifest.json").write_text(json.dumps({**manifest, "learnable": 5}))
    completed = _run("train_loop.sh", _dry_sweep(tiny_model, sampled_root, tmp_path, "12 1000"), timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert f"uniform/12.jsonl: {rows} rows\n" in completed.stdout
    assert f"uniform/1000.jsonl: {rows} rows  SHORT: {rows} of 1000 rows" in completed.stdout
    table = {line.split()[0]: line for line in completed.stdout.splitlines() if line.startswith("uniform_")}
    assert f" {rows} of 1000 SHORT " in table["uniform_1000_lr4e-6_g8_beta0.5"]
    assert "SHORT" not in table["uniform_12_lr4e-6_g8_beta0.5"]
    assert table["uniform_12_lr4e-6_g8_beta0.5"].split()[3:6] == ["5", "of", str(rows)]
    header = next(line for line in completed.stdout.splitlines() if line.startswith("run "))
    assert header.split()[:4] == ["run", "status", "rows", "learnable"]


@pytest.mark.parametrize(
    ("script", "knob", "value", "allowed"),
    [
        ("train.sh", "NUM_GENERATIONS", "0", "an integer >= 2"),
        ("train.sh", "LR", "abc", "a number > 0"),
        ("train.sh", "DYNAMIC_HD", "-1", "an integer >= 1"),
        ("train.sh", "DYNAMIC_SAMPLE", "yes", "one of true, false"),
        ("train.sh", "NODE_RANK", "1", "below NNODES=1"),
        ("train_loop.sh", "DATASET_SIZES", "1000 lots", "each an integer >= 1"),
        ("train_loop.sh", "NUM_GENERATIONS", "8 1", "each an integer >= 2"),
        ("evaluate.sh", "BATCH_SIZE", "0", "an integer >= 1"),
        ("evaluate.sh", "PROMPT_FORMAT", "paper", "one of sft, original"),
    ],
)
@pytest.mark.parametrize("dry_run", ["0", "1"])
def test_a_bad_knob_stops_in_a_second_with_one_line_and_nothing_written(
    script, knob, value, allowed, dry_run, tmp_path
):
    out = tmp_path / "out"
    env = {knob: value, "DRY_RUN": dry_run, "OUTPUT_DIR": str(out), "OUTPUT_ROOT": str(out), "LOG_DIR": str(out)}
    started = time.monotonic()
    completed = _run(script, env, timeout=60)
    assert completed.returncode == 2
    assert time.monotonic() - started < 10
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: {knob}={value}: ") and allowed in lines[0]
    assert completed.stdout == "" and not out.exists()


def test_evaluate_py_checks_its_options_with_the_same_rules(tmp_path):
    import sys

    for args, message in (
        (["--dynamic_hd", "-1"], "--dynamic_hd/--dynamic-hd: -1: must be an integer >= 1"),
        (["--batch_size", "0"], "--batch_size/--batch-size: 0: must be an integer >= 1"),
    ):
        completed = subprocess.run(
            [sys.executable, str(REPO / "evaluate.py"), "--model_path", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 2 and message in completed.stderr


def test_threads_are_the_cores_shared_by_the_nodes_processes(recipe, default_plan):
    cores = os.cpu_count() or 1
    assert f"OMP_NUM_THREADS={cores} " in _planned_command(default_plan.stdout)
    plan = _planned_command(_run("train.sh", {**recipe, "DRY_RUN": "1", "NPROC_PER_NODE": "2"}).stdout)
    assert f"OMP_NUM_THREADS={max(1, cores // 2)} " in plan
    plan = _planned_command(_run("train.sh", {**recipe, "DRY_RUN": "1", "OMP_NUM_THREADS": "3"}).stdout)
    assert "OMP_NUM_THREADS=3 " in plan


def test_evaluate_sh_checks_what_a_real_run_checks_and_generates_each_split_once(tiny_model, demo_data, tmp_path):
    out = tmp_path / "eval"
    base = {"MODEL_PATH": str(tiny_model), "DATA_ROOT": str(demo_data), "DRY_RUN": "1", "OUTPUT_DIR": str(out)}

    def stages(env: dict) -> list[str]:
        completed = _run("evaluate.sh", env, timeout=120)
        assert completed.returncode == 0, completed.stderr
        return [line for line in completed.stdout.splitlines() if line.startswith("+ ")]

    # by default one generation per split, with token probabilities (it writes everything evaluate.py does)
    (default,) = stages(base)
    assert "evaluate_token_prob.py" in default and "--splits test_basic test_compare test_region " in default
    (plain,) = stages({**base, "RUN_TOKEN_PROB": "0"})
    assert "/evaluate.py " in plain and "--splits test_basic test_compare test_region " in plain
    first, second = stages({**base, "TOKEN_PROB_SPLITS": "test_basic"})
    assert "/evaluate.py " in first and "--splits test_compare test_region " in first
    assert "evaluate_token_prob.py" in second and "--splits test_basic " in second
    # what a real run would reject, the dry run rejects: a missing checkpoint, a misspelt split
    missing = _run("evaluate.sh", {**base, "MODEL_PATH": str(tmp_path / "nowhere")})
    assert missing.returncode == 2 and "no checkpoint there" in missing.stderr
    typo = _run("evaluate.sh", {**base, "SPLITS": "test_basix"})
    assert typo.returncode == 2 and "split test_basix" in typo.stderr and "test_basic" in typo.stderr
    # a GPU node's plan from this CPU machine
    gpu = _run("evaluate.sh", {**base, "TARGET": "gpu", "NPROC_PER_NODE": "8"})
    assert "precision bfloat16, attention flash_attention_2, device cuda, process group nccl" in gpu.stdout
    assert not out.exists()


def test_the_demo_never_deletes_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "run42"
    out.mkdir()
    (out / "results.json").write_text('{"accuracy": 0.9}')
    completed = subprocess.run(
        ["bash", str(REPO / "tools" / "demo.sh")],
        env={**os.environ, "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2 and "was not made by the demo" in completed.stderr
    assert (out / "results.json").read_text() == '{"accuracy": 0.9}'


def test_a_sweep_over_an_empty_set_stops_before_anything_trains(tiny_model, sampled_root, tmp_path):
    """An empty set (a pool with nothing to draw, a file cut short) is listed with the missing ones; it used to pass
    the dry run and fail, or train on nothing, later."""
    (sampled_root / "annotations" / "uniform" / "8.jsonl").write_text("")
    completed = _run("train_loop.sh", _dry_sweep(tiny_model, sampled_root, tmp_path, "8 12"), timeout=60)
    assert completed.returncode == 2
    assert f"  {sampled_root / 'annotations' / 'uniform' / '8.jsonl'} (empty)" in completed.stderr
    assert not (tmp_path / "sweep").exists()
