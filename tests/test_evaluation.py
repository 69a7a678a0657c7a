"""Evaluation: the pure core, then evaluate.py / evaluate_token_prob.py for real on the tiny model (in-process and as
subprocesses: kill-and-resume, two gloo ranks), the HTML report, the KG metric script, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_report_pages import open_page
from utils.data.annotations import annotation_problems, load_annotations
from utils.evaluation.results import ResultStream, original_correct, read_parts, strict_correct, summarize
from utils.evaluation.runner import main as evaluate_main
from utils.io import InputError

REPO = Path(__file__).resolve().parents[1]
FAST = ["--max_new_tokens", "12", "--batch_size", "4"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


# --- pure core -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "answers", "original", "strict"),
    [
        ("<think>x</think><answer>Left</answer>", ["left"], True, True),
        ("<answer>left, right</answer>", ["left"], True, False),  # listing both: the original metric pays
        ("<answer>right lung, left lung</answer>", ["left lung", "right lung"], True, True),
        ("left", ["left"], True, False),  # no <answer> span: strict says wrong
        ("<answer>no</answer> but a large effusion", ["yes"], False, False),
        ("<answer>nothing</answer>", ["no"], True, False),  # "no" is a substring of "nothing"
        ("", ["no"], False, False),
    ],
)
def test_original_and_strict_metrics(response, answers, original, strict):
    assert original_correct(response, answers) is original
    assert strict_correct(response, answers) is strict


def test_summary_per_type_and_errors():
    rows = [
        {
            "generated_text": "<think>Small effusion.</think><answer>yes</answer>",
            "is_correct": True,
            "is_correct_strict": True,
            "semantic_type": "a",
            "question_type": "q",
            "answer_type": "x",
            "consistency": "contradicts",
        },
        {
            "generated_text": "yes",
            "consistency": "unchecked",
            "is_correct": True,
            "is_correct_strict": False,
            "semantic_type": "b",
            "question_type": "q",
            "answer_type": "x",
        },
        {
            "is_correct": False,
            "is_correct_strict": False,
            "semantic_type": "b",
            "question_type": "q",
            "answer_type": "x",
            "error": "image not found: x.png",
        },
    ]
    summary = summarize(rows)
    assert summary["overall"] == {
        "num_samples": 2,
        "accuracy": 1.0,
        "accuracy_strict": 0.5,
        "format": 0.5,
        "consistency_checked": 1,  # an unchecked response counts in neither the numerator nor the denominator
        "contradiction_rate": 1.0,
    }
    assert summary["num_errors"] == 1
    assert summary["semantic_type"]["b"]["num_samples"] == 1


def test_result_stream_drops_a_partial_last_line(tmp_path):
    part = tmp_path / "part-0.jsonl"
    part.write_text('{"id": 0}\n{"id": 1}\n{"id": 2, "generat')  # killed mid-write
    assert sorted(read_parts(tmp_path)) == [0, 1]
    stream = ResultStream(part)
    stream.append([{"id": 2}])
    stream.close()
    assert part.read_text() == '{"id": 0}\n{"id": 1}\n{"id": 2}\n'


def test_annotation_checks_name_index_and_field(tmp_path):
    assert annotation_problems({"question": "q", "answer": "a"}, 3) == ["index 3: field 'image_ids': missing"]
    assert (
        "field 'is_correct'"
        in annotation_problems({"image_ids": ["a"], "question": "q", "answer": "a", "is_correct": "no"}, 0)[0]
    )
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_ids": ["a"], "question": "q", "answer": "a"},\n {"image_ids": ["b"], "question": "q"}]')
    with pytest.raises(InputError, match=r"bad.json: index 1: field 'answer': missing"):
        load_annotations(bad)
    bad.write_text('[{"image_ids": ["a"],\n "question": }]')
    with pytest.raises(InputError, match=r"bad.json: line 2 column 14: malformed JSON"):
        load_annotations(bad)


# --- real runs -----------------------------------------------------------------------------------------------------


def _split(demo_data: Path, name: str) -> Path:
    return demo_data / "annotations" / "eval" / f"{name}_vqa.json"


@pytest.fixture(scope="module")
def reference_run(tiny_model, demo_data, tmp_path_factory):
    """One uninterrupted in-process evaluation of every split (the default mode)."""
    out = tmp_path_factory.mktemp("eval")
    code = evaluate_main(
        ["--model_path", str(tiny_model), "--data_root", str(demo_data), "--output_dir", str(out), *FAST]
    )
    assert code == 0
    return out


def test_default_mode_writes_results_summary_and_chart(reference_run, demo_data):
    for split in ("test_basic", "test_compare", "test_region"):
        result = json.loads((reference_run / split / "results.json").read_text())
        annotations = json.loads(_split(demo_data, split).read_text())
        assert result["num_samples"] == len(annotations) == len(result["results"])
        assert [r["id"] for r in result["results"]] == list(range(len(annotations)))
        assert 0.0 <= result["accuracy"] <= 1.0 and "accuracy_strict" in result
        first = result["results"][0]
        for key in ("image_ids", "question", "answer", "explanation", "generated_text", "is_correct", "image_paths"):
            assert key in first
        assert all(Path(p).is_file() for p in first["image_paths"])
        assert result["summary"]["overall"]["num_samples"] == len(annotations)
        assert (reference_run / split / "accuracy_by_type.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_killed_run_resumes_without_duplicates_or_losses(tiny_model, demo_data, tmp_path):
    annotation = _split(demo_data, "valid_all")
    n = len(json.loads(annotation.read_text()))
    args = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "--model_path",
        str(tiny_model),
        "--annotation_file",
        str(annotation),
        "--img_root",
        str(demo_data / "images"),
        "--max_new_tokens",
        "48",
        "--batch_size",
        "1",
    ]
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    part = killed_out / "valid_all_vqa" / "parts" / "part-0.jsonl"
    process = subprocess.Popen(
        [*args, "--output_dir", str(killed_out)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    finished_before_kill = part.read_text().count("\n")
    assert process.returncode == -signal.SIGKILL and 3 <= finished_before_kill < n  # really killed mid-run
    with open(part, "a") as handle:
        handle.write('{"id": 999, "generated_te')  # what a kill in the middle of a write leaves
    subprocess.run([*args, "--output_dir", str(killed_out)], env=_env(), check=True, capture_output=True)
    subprocess.run([*args, "--output_dir", str(clean_out)], env=_env(), check=True, capture_output=True)
    resumed = json.loads((killed_out / "valid_all_vqa" / "results.json").read_text())["results"]
    clean = json.loads((clean_out / "valid_all_vqa" / "results.json").read_text())["results"]
    assert [r["id"] for r in resumed] == list(range(n))
    assert [(r["id"], r["generated_text"]) for r in resumed] == [(r["id"], r["generated_text"]) for r in clean]


def test_two_gloo_ranks_match_one_process(tiny_model, demo_data, reference_run, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(REPO / "evaluate.py"),
        "--model_path",
        str(tiny_model),
        "--data_root",
        str(demo_data),
        "--splits",
        "test_basic",
        "test_compare",
        "--output_dir",
        str(tmp_path),
        *FAST,
    ]
    subprocess.run(command, env=_env(), check=True, capture_output=True, timeout=300)
    for split in ("test_basic", "test_compare"):
        two = json.loads((tmp_path / split / "results.json").read_text())
        one = json.loads((reference_run / split / "results.json").read_text())
        assert two["world_size"] == 2 and sorted((tmp_path / split / "parts").glob("part-*")) != []
        assert len(list((tmp_path / split / "parts").glob("part-*.jsonl"))) == 2
        keys = ("id", "generated_text", "is_correct", "is_correct_strict")
        assert [[r[k] for k in keys] for r in two["results"]] == [[r[k] for k in keys] for r in one["results"]]
        assert two["accuracy"] == one["accuracy"]


@pytest.fixture(scope="module")
def token_prob_run(tiny_model, demo_data, tmp_path_factory) -> Path:
    """evaluate_token_prob.py on test_basic with top-3 alternatives: the split folder."""
    out = tmp_path_factory.mktemp("token_prob")
    arguments = ["--model_path", str(tiny_model), "--data_root", str(demo_data), "--splits", "test_basic"]
    assert evaluate_main([*arguments, "--output_dir", str(out), "--top_k", "3", *FAST], token_probs=True) == 0
    return out / "test_basic"


def test_token_probabilities(token_prob_run):
    results = json.loads((token_prob_run / "results.json").read_text())["results"]
    for r in results:
        n = len(r["generated_token_ids"])
        assert n == len(r["generated_tokens"]) == len(r["token_logprobs"]) == len(r["token_probabilities"]) > 0
        assert all(len(alts) == 3 for alts in r["top_alternatives"])
        assert all(0.0 < p <= 1.0 for p in r["token_probabilities"])
        text = bytes.fromhex("".join(r["generated_token_bytes"])).decode("utf-8", errors="replace")
        assert text.startswith(r["generated_text"])  # the bytes reproduce the text (plus any end token)


def test_html_report_shows_every_token_of_every_sample(token_prob_run, browser):
    results = json.loads((token_prob_run / "results.json").read_text())["results"]
    open_page(browser, token_prob_run / "report.html")  # every sample fits on the first page here
    shown = browser.execute_script(
        "const out = {}; for (const s of document.querySelectorAll('.sample'))"
        "  out[s.id.slice(1)] = [...s.querySelectorAll('.tok')].map(t => t.textContent); return out;"
    )
    shown = {int(k): v for k, v in shown.items()}
    assert set(shown) == {r["id"] for r in results}
    for r in results:
        assert shown[r["id"]] == r["generated_tokens"]  # every token, in order, as the browser shows it


def test_kg_metric_script_reports_entities_and_relations(reference_run, tmp_path):
    results = reference_run / "test_basic" / "results.json"
    subprocess.run(
        ["bash", str(REPO / "tools" / "get_kg_metric.sh"), str(results), str(tmp_path)],
        env=_env(),
        check=True,
        capture_output=True,
    )
    metric = json.loads((tmp_path / "kg_metric.json").read_text())
    for name in ("entity", "relation"):
        for key in ("micro_precision", "micro_recall", "micro_f1", "macro_f1"):
            assert 0.0 <= metric[f"{name}_{key}"] <= 1.0
    assert metric["samples"] == json.loads(results.read_text())["num_samples"]


def test_kg_metric_script_resolves_relative_paths_against_the_callers_directory(reference_run, tmp_path):
    import shutil

    shutil.copy(reference_run / "test_basic" / "results.json", tmp_path / "results.json")
    subprocess.run(
        ["bash", str(REPO / "tools" / "get_kg_metric.sh"), "results.json", "kg"],
        env=_env(),
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    assert (tmp_path / "kg" / "kg_metric.json").is_file()


# --- bad input -----------------------------------------------------------------------------------------------------


def _evaluate_with_a_missing_image(tiny_model: Path, demo_data: Path, tmp_path: Path, *extra: str) -> int:
    """Evaluate test_basic with row 1 pointing at an image that does not exist (file `edited.json`)."""
    rows = json.loads(_split(demo_data, "test_basic").read_text())
    rows[1]["image_ids"] = ["no-such-image"]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(rows))
    args = ["--model_path", str(tiny_model), "--annotation_file", str(path), "--img_root", str(demo_data / "images")]
    return evaluate_main([*args, "--output_dir", str(tmp_path / "out"), *FAST, *extra])


def test_missing_image_is_recorded_and_counted(tiny_model, demo_data, tmp_path):
    assert _evaluate_with_a_missing_image(tiny_model, demo_data, tmp_path) == 0
    result = json.loads((tmp_path / "out" / "edited" / "results.json").read_text())
    assert result["num_errors"] == 1 and result["num_samples"] == 8
    assert "image not found" in result["results"][1]["error"] and result["results"][1]["is_correct"] is False
    assert result["summary"]["overall"]["num_samples"] == 7


def test_missing_image_with_strict_stops(tiny_model, demo_data, tmp_path, capsys):
    assert _evaluate_with_a_missing_image(tiny_model, demo_data, tmp_path, "--strict") == 2
    assert "edited.json: index 1: field 'image_ids': image not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '[{"image_ids": ["a"], "question": "q", "answer": "a"}, {"image_ids": ["a"], "answer": "a"}]',
            "index 1: field 'question': missing",
        ),
        ('[{"image_ids": "a", "question": "q", "answer": "a"}]', "index 0: field 'image_ids'"),
        ('{"results": []}', "expected a JSON list of annotations"),
        ('[{"image_ids": ["a"], "question": "q", "answer": "a"},', "malformed JSON"),
        ("[]", "no annotations (an empty list)"),  # it used to report accuracy 0.0 over 0 samples, exit 0
        ('[{"image_ids": ["a"], "question": "q", "answer": []}]', "index 0: field 'answer': empty"),
    ],
)
def test_bad_annotation_file_exits_2_with_one_line(content, message, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(content)
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "evaluate.py"),
            "--model_path",
            "unused",
            "--annotation_file",
            str(path),
            "--img_root",
            str(tmp_path),
        ],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0]


def test_scored_log_probs_match_the_engines_own(tiny_model, demo_data, swift_plugin):
    """The token-probability export scores prompt + generated ids in one forward pass; it must agree with the
    log-probs ms-swift's engine computes step by step during generation (mixed prompt lengths: 1 and 2 images)."""
    import torch
    from swift.infer_engine import InferRequest, RequestConfig

    from utils.data.annotations import load_annotations
    from utils.evaluation.engine import EngineConfig, generate, load_engine
    from utils.evaluation.results import build_items

    items = []
    for split in ("test_basic", "test_compare"):
        items += build_items(load_annotations(_split(demo_data, split)), demo_data / "images")[:3]
    engine = load_engine(
        EngineConfig(model_path=str(tiny_model), batch_size=8, torch_dtype="float32", attn_impl="sdpa")
    )
    ours = generate(engine, items, max_new_tokens=10, logprobs=True, top_k=3)
    requests = [
        InferRequest(
            messages=[{"role": "user", "content": "<image>" * len(i.image_paths) + i.annotation["question"]}],
            images=list(i.image_paths),
        )
        for i in items
    ]
    config = RequestConfig(max_tokens=10, temperature=0, logprobs=True, top_logprobs=3, return_details=True)
    for mine, response in zip(ours, engine.infer(requests, config, use_tqdm=False)):
        choice = response.choices[0]
        assert mine["generated_token_ids"] == list(choice.token_ids)
        theirs = [entry["logprob"] for entry in choice.logprobs["content"]]
        assert torch.allclose(torch.tensor(mine["token_logprobs"]), torch.tensor(theirs), atol=1e-4)
        for step, entry in zip(mine["top_alternatives"], choice.logprobs["content"]):
            assert [round(a["logprob"], 4) for a in step] == [round(a["logprob"], 4) for a in entry["top_logprobs"]]


def test_lora_adapter_checkpoints_are_applied(tiny_model, demo_data, swift_plugin, tmp_path):
    """`--adapters`: a LoRA checkpoint trained by ms-swift on top of the tiny model is loaded next to the model's
    own vision LoRA, and evaluation runs with it."""
    from swift import SftArguments, sft_main

    from utils.data.grpo_rows import annotation_to_sft_row
    from utils.evaluation.engine import EngineConfig, load_engine
    from utils.io import atomic_write_jsonl

    rows = json.loads(_split(demo_data, "valid_all").read_text())[:16]
    atomic_write_jsonl(tmp_path / "sft.jsonl", [annotation_to_sft_row(r, demo_data / "images") for r in rows])
    sft_main(
        SftArguments(
            model=str(tiny_model),
            model_type="phi4_mm_native",
            dataset=[str(tmp_path / "sft.jsonl")],
            tuner_type="lora",
            torch_dtype="float32",
            max_steps=2,
            per_device_train_batch_size=8,
            learning_rate=1e-2,
            save_steps=2,
            output_dir=str(tmp_path / "lora"),
            add_version=False,
            check_model=False,
            dataset_num_proc=1,
            dataloader_num_workers=0,
            report_to=["none"],
            gradient_checkpointing=False,
        )
    )
    adapter = tmp_path / "lora" / "checkpoint-2"
    engine = load_engine(
        EngineConfig(model_path=str(tiny_model), adapters=(str(adapter),), torch_dtype="float32", attn_impl="sdpa")
    )
    from peft.tuners.lora import LoraLayer

    layers = [m for m in engine.model.modules() if isinstance(m, LoraLayer)]
    assert layers and all(sorted(m.active_adapters) == ["default", "vision"] for m in layers)  # both applied
    code = evaluate_main(
        [
            "--model_path",
            str(tiny_model),
            "--adapters",
            str(adapter),
            "--data_root",
            str(demo_data),
            "--splits",
            "test_basic",
            "--output_dir",
            str(tmp_path / "eval"),
            *FAST,
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "eval" / "test_basic" / "results.json").read_text())["adapters"] == [str(adapter)]


def test_vllm_backend_without_vllm_stops_naming_the_vllm_environment(tiny_model, demo_data, tmp_path):
    """vLLM lives in its own environment (.venv-vllm): from .venv, --infer_backend vllm says where to run it."""
    command = [*_evaluate_command(tiny_model, demo_data, tmp_path), "--infer_backend", "vllm"]
    completed = subprocess.run(command, env=_env(), capture_output=True, text=True)
    assert completed.returncode == 2
    assert "has no vLLM" in completed.stderr and ".venv-vllm/bin/python" in completed.stderr
    assert not any(tmp_path.iterdir())


def _evaluate_command(model: Path, data: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "evaluate.py"),
        "--model_path",
        str(model),
        "--data_root",
        str(data),
        "--splits",
        "test_basic",
        "--limit",
        "2",
        "--output_dir",
        str(output),
        *FAST,
    ]


def test_two_runs_checkpoints_sharing_a_basename_never_share_results(tiny_model, demo_data, tmp_path):
    from tools.make_tiny_model import build

    first = tmp_path / "sweep" / "run_a" / "checkpoint-1"
    shutil.copytree(tiny_model, first)
    second = build(tmp_path / "sweep" / "run_b" / "checkpoint-1", seed=1)  # other weights, same basename
    # evaluate.sh names the run in its default output folder.
    planned = {}
    for model in (first, second):
        dry = subprocess.run(
            ["bash", str(REPO / "evaluate.sh")],
            env={
                **_env(),
                "DRY_RUN": "1",
                "MODEL_PATH": str(model),
                "DATA_ROOT": str(demo_data),
                "RUN_TOKEN_PROB": "0",
            },
            capture_output=True,
            text=True,
            check=True,
        )
        command = next(line for line in dry.stdout.splitlines() if line.startswith("+")).split()
        planned[model.parent.name] = command[command.index("--output_dir") + 1]
    assert planned["run_a"].endswith("output/eval/run_a/checkpoint-1")
    assert planned["run_b"].endswith("output/eval/run_b/checkpoint-1")
    # Pointed at one folder anyway, the second evaluation refuses the first one's answers, naming both.
    shared = tmp_path / "eval"
    subprocess.run(_evaluate_command(first, demo_data, shared), env=_env(), check=True, capture_output=True)
    completed = subprocess.run(
        _evaluate_command(second, demo_data, shared), env=_env(), capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert str(first) in completed.stderr and str(second) in completed.stderr and "weights" in completed.stderr
    results = json.loads((shared / "test_basic" / "results.json").read_text())
    assert results["model_path"] == str(first)  # nothing of the first run's results was overwritten or mixed
    # --no-resume starts that split over for the new model.
    subprocess.run(
        [*_evaluate_command(second, demo_data, shared), "--no-resume"], env=_env(), check=True, capture_output=True
    )
    assert json.loads((shared / "test_basic" / "results.json").read_text())["model_path"] == str(second)


def test_ranks_without_a_shared_output_folder_stop_before_generating(tiny_model, demo_data, tmp_path):
    """Two gloo ranks, each given its own output folder (what two nodes without a shared filesystem amount to)."""
    port = 29000 + os.getpid() % 1000
    processes = []
    for rank in (0, 1):
        env = {**_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        command = _evaluate_command(tiny_model, demo_data, tmp_path / f"node{rank}")
        processes.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [2, 2]
    for error in errors:
        assert f"--output_dir {tmp_path / 'node0' / 'test_basic'}" in error and "rank(s) 1 cannot see" in error
    assert not list(tmp_path.glob("node*/test_basic/parts/part-*.jsonl"))  # nothing was generated


def test_headroom_samples_k_completions_per_item_and_reports_what_grpo_can_learn(tiny_model, demo_data, tmp_path):
    """--num_samples K draws K completions per item at --temperature beside the greedy one, keeps them in results.json
    and reports pass@1, pass@K and the share of mixed groups overall and per type; the settings are part of the
    fingerprint, so a resumed run cannot mix sampled and unsampled parts."""
    out = tmp_path / "eval"
    args = ["--model_path", str(tiny_model), "--data_root", str(demo_data), "--splits", "test_basic"]
    sampled = [*args, "--output_dir", str(out), "--num_samples", "3", "--temperature", "1.0", *FAST]
    assert evaluate_main(sampled) == 0
    results = json.loads((out / "test_basic" / "results.json").read_text())
    rows = results["results"]
    assert all(len(row["samples"]) == 3 and len(row["samples_correct_strict"]) == 3 for row in rows)
    assert any(len(set(row["samples"])) > 1 for row in rows), "temperature 1.0 drew the same text every time"
    for row in rows:  # each sample judged against its own item's references, by the strict metric
        assert row["samples_correct_strict"] == [strict_correct(s, json_answers(row)) for s in row["samples"]]
    room = results["summary"]["overall"]["headroom"]
    assert room["num_samples_per_item"] == 3
    assert room["pass_at_k"] == sum(any(r["samples_correct_strict"]) for r in rows) / len(rows)
    assert room["pass_at_1"] == results["accuracy_strict"]
    assert all("headroom" in block for block in results["summary"]["question_type"].values())
    assert results["num_samples_per_item"] == 3 and results["temperature"] == 1.0
    # every response also gets a consistency verdict, and the summary the rate of contradictions among the checkable
    assert {row["consistency"] for row in rows} <= {"consistent", "contradicts", "unchecked"}
    assert "contradiction_rate" in results["summary"]["overall"]
    # resuming the same folder without sampling would mix two evaluations: refused, naming the difference
    assert evaluate_main([*args, "--output_dir", str(out), *FAST]) == 2


def json_answers(row: dict) -> list[str]:
    return [row["answer"]] if isinstance(row["answer"], str) else row["answer"]
