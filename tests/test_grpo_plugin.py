"""plugin.py through real ms-swift GRPO on the tiny model: rewards, token log-probs, sub-scores, freezing."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests.grpo_helpers import grpo_arguments, write_grpo_rows
from utils.data.grpo_rows import annotation_to_grpo_row
from utils.io import atomic_write_jsonl
from utils.scoring.kg_reward import get_kg_scorer, kg_jaccard
from utils.scoring.rewards import r1v_accuracy


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _completion_rows(run_dir) -> list[dict]:
    """completions.jsonl as one dict per sample; the last event repeats the last step, so keep one per step."""
    rows, seen_steps = [], set()
    for event in _read_jsonl(run_dir / "completions.jsonl"):
        if event["step"][0] in seen_steps:
            continue
        seen_steps.add(event["step"][0])
        batch = [dict(zip(event, values)) for values in zip(*event.values())]
        for row in batch:
            row["batch_solutions"] = [r["solution"] for r in batch]
        rows.extend(batch)
    return rows


@pytest.fixture(scope="module")
def train_rows(tiny_model, demo_data, tmp_path_factory):
    return write_grpo_rows(
        demo_data / "annotations" / "eval" / "valid_all_vqa.json",
        demo_data / "images",
        tmp_path_factory.mktemp("rows") / "train.jsonl",
        limit=16,
    )


@pytest.fixture(scope="module")
def kg_run(tiny_model, train_rows, swift_plugin, tmp_path_factory):
    """2 GRPO steps with accuracy + KG Jaccard; 8 completions per step = 2 prompts x 4 generations."""
    from swift import rlhf_main

    run_dir = tmp_path_factory.mktemp("kg_run")
    args = grpo_arguments(
        tiny_model,
        train_rows,
        run_dir,
        [str(swift_plugin)],
        ["external_r1v_acc", "external_kg_jac"],
        per_device_train_batch_size=8,
        max_completion_length=32,
    )
    result = rlhf_main(args)
    assert result["global_step"] == 2
    return run_dir


def test_completions_log_has_rewards_and_aligned_token_columns(kg_run, tiny_model):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = AutoConfig.from_pretrained(tiny_model)
    end_ids = set(config.eos_token_id)
    image_id = config.vision_config.image_token_id
    rows = _completion_rows(kg_run)
    assert len(rows) == 16
    for row in rows:
        ids, logps = row["completion_token_ids"], row["token_logps"]
        assert 0 < len(ids) == len(logps) == len(row["completion_tokens"]) == len(row["completion_token_bytes"])
        assert all(math.isfinite(lp) and lp <= 0 for lp in logps)
        assert image_id not in ids  # a sampled image placeholder would crash the native model's next decoding step
        visible = ids[:-1] if ids[-1] in end_ids else ids
        assert tokenizer.decode(visible) == row["completion"]
        raw = bytes.fromhex("".join(row["completion_token_bytes"][: len(visible)]))
        assert raw.decode("utf-8", errors="replace") == row["completion"]
        assert 0.0 <= row["R1VAccuracy"] <= 1.0 and 0.0 <= row["KGJaccard"] <= 1.0
        assert row["R1VAccuracy"] == r1v_accuracy(row["completion"], row["solution"])


def test_every_completion_is_scored_against_its_own_solution(kg_run):
    rows = _completion_rows(kg_run)
    scorer = get_kg_scorer()
    assert all(len(set(row["batch_solutions"])) >= 2 for row in rows)  # every reward call held 2+ prompts
    own = [kg_jaccard(d) for d in scorer.score([r["completion"] for r in rows], [r["solution"] for r in rows])]
    first = [
        kg_jaccard(d) for d in scorer.score([r["completion"] for r in rows], [r["batch_solutions"][0] for r in rows])
    ]
    logged = [row["KGJaccard"] for row in rows]
    assert logged == pytest.approx(own, abs=1e-6)
    # The run must contain a completion whose score depends on which solution it is paired with; otherwise this
    # test could not tell own-solution scoring from the original's solution[0] scoring.
    assert any(abs(o - f) > 1e-6 for o, f in zip(own, first))


def test_kg_sub_scores_reach_the_training_metrics(kg_run):
    steps = [row for row in _read_jsonl(kg_run / "logging.jsonl") if "rewards/KGJaccard/mean" in row]
    assert len(steps) == 2
    for row in steps:
        for metric in ("entity_iou", "relation_iou", "num_entities"):
            assert f"rewards/KGJaccard/{metric}" in row
        assert 0.0 <= row["rewards/KGJaccard/entity_iou"] <= 1.0
        assert row["rewards/KGJaccard/num_entities"] >= 0


@pytest.mark.parametrize(
    ("freeze", "lm_head"), [("1", "0"), ("1", "1"), ("0", "0")], ids=["vision-lora", "vision-lora+lm_head", "off"]
)
def test_freeze_non_vision_params(
    freeze, lm_head, tiny_model, train_rows, swift_plugin, tmp_path, isolated_environment
):
    monkeypatch = isolated_environment
    from swift import rlhf_main

    monkeypatch.setenv("FREEZE_NON_VISION_PARAMS", freeze)
    monkeypatch.setenv("FREEZE_TRAIN_LM_HEAD", lm_head)
    args = grpo_arguments(
        tiny_model,
        train_rows,
        tmp_path,
        [str(swift_plugin)],
        ["external_r1v_acc", "external_kg_jac"],
        per_device_train_batch_size=8,
        max_completion_length=32,
        learning_rate=1e-2,
    )
    rlhf_main(args)
    checkpoint = tmp_path / "checkpoint-2"
    base_before, base_after = load_file(tiny_model / "model.safetensors"), load_file(checkpoint / "model.safetensors")
    lora_before = load_file(tiny_model / "vision-lora" / "adapter_model.safetensors")
    lora_after = load_file(checkpoint / "vision-lora" / "adapter_model.safetensors")
    changed_base = {k for k in base_before if not torch.equal(base_before[k], base_after[k])}
    changed_lora = {k for k in lora_before if not torch.equal(lora_before[k], lora_after[k])}
    assert changed_lora == set(lora_before)  # every vision-LoRA tensor trained
    if freeze == "1":
        # As in the release, lm_head is tied to the input embeddings: the checkpoint stores that one tensor.
        head = "model.embed_tokens.weight" if "lm_head.weight" not in base_before else "lm_head.weight"
        assert changed_base == ({head} if lm_head == "1" else set())  # everything else bit-identical
    else:
        # Without the hook ms-swift's full tuner trains as usual: the language model moves too.
        assert "model.embed_tokens.weight" in changed_base and any(k.startswith("model.layers.") for k in changed_base)
    # The KL reference is the model as loaded, vision LoRA included: at step 1 policy and reference agree exactly.
    logged = [row for row in _read_jsonl(tmp_path / "logging.jsonl") if "kl" in row]
    assert logged[0]["kl"] == 0.0 and logged[1]["kl"] > 0.0


def test_freezing_that_matches_nothing_stops_at_start_up(
    tiny_model, train_rows, swift_plugin, tmp_path, isolated_environment
):
    monkeypatch = isolated_environment
    from swift import rlhf_main

    monkeypatch.setenv("FREEZE_NON_VISION_PARAMS", "1")
    monkeypatch.setenv("FREEZE_TRAINABLE_PATTERNS", r"lora_A\.speech\.")
    args = grpo_arguments(tiny_model, train_rows, tmp_path, [str(swift_plugin)], ["external_r1v_acc"])
    with pytest.raises(ValueError, match="no parameter name matches FREEZE_TRAINABLE_PATTERNS"):
        rlhf_main(args)
    assert not list(tmp_path.glob("checkpoint-*"))


@pytest.mark.parametrize(
    ("padding_free", "sequence_parallel_size", "message"),
    [(True, 1, "padding-free"), (False, 2, "sequence parallel")],
)
def test_unsupported_token_log_layouts_are_refused(padding_free, sequence_parallel_size, message, swift_plugin):
    # Checked before ms-swift's own trainer init; padding-free needs flash-attention, so no CPU run can reach it.
    from swift_patches.grpo_trainer import check_token_log_layout

    with pytest.raises(ValueError, match=message):
        check_token_log_layout(True, padding_free, sequence_parallel_size)
    check_token_log_layout(False, padding_free, sequence_parallel_size)  # nothing logged, nothing to refuse


def test_trainer_is_installed_through_the_mapping_and_hooks_are_checked(swift_plugin):
    from swift.rlhf_trainers.grpo_trainer import GRPOTrainer
    from swift.trainers import TrainerFactory

    from swift_patches.grpo_trainer import CheXGRPOTrainer, check_swift_hooks

    assert TrainerFactory.TRAINER_MAPPING["grpo"] == "swift_patches.grpo_trainer.CheXGRPOTrainer"
    assert issubclass(CheXGRPOTrainer, GRPOTrainer)
    check_swift_hooks()  # the installed ms-swift has every hook with the expected parameters

    class RenamedHook(GRPOTrainer):
        def _postprocess_batch(self, samples, encoded_batches):  # what a future ms-swift might do
            pass

    with pytest.raises(RuntimeError, match="_postprocess_batch"):
        check_swift_hooks(RenamedHook)


def test_training_plots_are_written_from_a_real_run(kg_run, tmp_path):
    from tools.plot_training import plot_run, step_metrics

    written = plot_run(kg_run, tmp_path)
    assert sorted(p.name for p in written) == ["completion_length.png", "kl.png", "rewards.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    series = step_metrics(_read_jsonl(kg_run / "logging.jsonl"))
    assert [step for step, _ in series["rewards/KGJaccard/entity_iou"]] == [1, 2]


def test_plotting_a_folder_without_a_run_exits_2(tmp_path, capsys):
    from tools.plot_training import main

    assert main([str(tmp_path)]) == 2
    assert "logging.jsonl: file not found" in capsys.readouterr().err


def test_a_lora_tuner_that_switches_off_the_vision_lora_is_refused(tiny_model, train_rows, swift_plugin, tmp_path):
    from swift import rlhf_main

    args = grpo_arguments(
        tiny_model, train_rows, tmp_path, [str(swift_plugin)], ["external_r1v_acc"], tuner_type="lora"
    )
    with pytest.raises(ValueError, match="vision LoRA .* is switched off"):
        rlhf_main(args)


def test_freezing_counts_zero3_partitioned_parameters_in_full():
    """Under ZeRO-3 a parameter's local tensor is empty and `ds_numel` holds its size: the log must count that."""
    from torch import nn

    from swift_patches.freezing import FreezeConfig, freeze_non_vision

    class Partitioned(nn.Module):
        def __init__(self):
            super().__init__()
            self.lora_A = nn.ModuleDict({"vision": nn.Linear(1, 1, bias=False)})
            self.base = nn.Linear(1, 1, bias=False)
            for linear, size in ((self.lora_A["vision"], 48), (self.base, 1000)):
                linear.weight = nn.Parameter(torch.empty(0))
                linear.weight.ds_numel = size

    report = freeze_non_vision(Partitioned(), FreezeConfig(enabled=True))
    assert (report.trainable_count, report.frozen_count) == (48, 1000)


def test_sub_scores_cover_the_samples_the_reward_mean_covers_under_dynamic_sampling(
    tiny_model, train_rows, swift_plugin, tmp_path, isolated_environment
):
    """Every group is resampled (a threshold no std reaches), so ms-swift keeps the first batch after two retries;
    KGJaccard = (entity_iou + relation_iou) / 2 per sample, so over the same samples the means must agree.
    The two resample rounds' completions are the dropped ones: they go to dynamic_sampling.jsonl, the kept ones say
    round 0, and the completions page marks the dropped groups."""
    from swift import rlhf_main

    isolated_environment.setenv("DYNAMIC_SAMPLE_MIN_STD", "100")
    args = grpo_arguments(
        tiny_model,
        train_rows,
        tmp_path,
        [str(swift_plugin)],
        ["external_kg_jac"],
        per_device_train_batch_size=8,
        max_completion_length=24,
        temperature=1.5,
        dynamic_sample=True,
        max_resample_times=2,
    )
    rlhf_main(args)
    steps = [row for row in _read_jsonl(tmp_path / "logging.jsonl") if "rewards/KGJaccard/mean" in row]
    assert len(steps) == 2
    for row in steps:
        parts = (row["rewards/KGJaccard/entity_iou"] + row["rewards/KGJaccard/relation_iou"]) / 2
        assert row["rewards/KGJaccard/mean"] == pytest.approx(parts, abs=1e-6)
    kept = _completion_rows(tmp_path)
    assert {row["sampling_round"] for row in kept} == {0}
    dropped = _read_jsonl(tmp_path / "dynamic_sampling.jsonl")
    per_step = 8  # generation batch: per_device_train_batch_size 8 on one rank
    assert sorted((row["step"], row["round"]) for row in dropped) == sorted(
        (step, number) for step in (1, 2) for number in (1, 2) for _ in range(per_step)
    )
    assert all(set(row["rewards"]) == {"KGJaccard"} and isinstance(row["completion"], str) for row in dropped)

    from tests.test_report_pages import open_page
    from tools.completions_report import main as completions_report
    from utils.reports.browser import browser_missing, headless_chromium

    assert completions_report([str(tmp_path)]) == 0
    if browser_missing():  # everything above was checked; only the page itself needs the browser
        pytest.skip(f"completions page not opened: {browser_missing()}")
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium() as browser:
        open_page(browser, tmp_path / "completions.html")
        WebDriverWait(browser, 20).until(
            lambda b: b.execute_script("return document.querySelectorAll('.loading').length") == 0
        )
        groups = browser.execute_script(
            "return [...document.querySelectorAll('#step1 .group')]"
            ".map(g => [g.dataset.dropped, g.querySelectorAll('.gen').length])"
        )
    groups_per_round = per_step // 4  # 4 generations a group
    assert groups == [["0", 4]] * groups_per_round + [["1", 4]] * (2 * groups_per_round)


def test_rollout_log_probs_are_conditioned_on_each_prompts_own_images(tiny_model, demo_data, swift_plugin, tmp_path):
    """The policy's log-probs logged at rollout (one step: still the initial weights) equal a separate scoring
    forward pass with that prompt's own images, and differ with another prompt's images: GRPO's training forward
    sees every sample's pixels, paired with the right sample. The reward canary cannot tell, as its reward reads text
    only."""
    from swift import rlhf_main
    from swift.infer_engine import InferRequest

    from utils.evaluation.engine import EngineConfig, load_engine, score_tokens

    annotations = json.loads((demo_data / "annotations" / "eval" / "valid_all_vqa.json").read_text())
    rows = [annotation_to_grpo_row(annotation, demo_data / "images") for annotation in annotations]
    for number, row in enumerate(rows):  # pool questions repeat; a case number makes each prompt name its images
        placeholders, question = row["messages"][0]["content"].rpartition("<image>")[::2]
        row["messages"][0]["content"] = f"{placeholders}<image>Case {number}. {question}"
    dataset = tmp_path / "rows.jsonl"
    atomic_write_jsonl(dataset, rows)
    args = grpo_arguments(
        tiny_model,
        dataset,
        tmp_path / "run",
        [str(swift_plugin)],
        ["external_r1v_acc"],
        max_steps=1,
        save_steps=1,
        per_device_train_batch_size=16,
        max_completion_length=32,
        temperature=1.0,  # log-probs are of logits / temperature; the scoring pass below is at 1
    )
    rlhf_main(args)
    images_of = {row["messages"][0]["content"]: row["images"] for row in rows}
    engine = load_engine(EngineConfig(model_path=str(tiny_model), torch_dtype="float32"))
    logged = _completion_rows(tmp_path / "run")
    image_sensitive = 0
    for row in logged:
        content = row["prompt"].split("<|user|>\n", 1)[1].split("<|end|>", 1)[0]
        own = images_of[content]
        other = next(r["images"] for r in rows if len(r["images"]) == len(own) and r["images"] != own)
        requests = [
            InferRequest(messages=[{"role": "user", "content": content}], images=images) for images in (own, other)
        ]
        (with_own, _), (with_other, _) = score_tokens(engine, requests, [row["completion_token_ids"]] * 2)
        assert row["token_logps"] == pytest.approx(with_own, abs=1e-4)
        image_sensitive += any(abs(a - b) > 1e-3 for a, b in zip(with_own, with_other))
    assert len({row["prompt"] for row in logged}) == 4
    assert image_sensitive >= 1  # otherwise this test could not tell own images from any images
