"""The ms-swift reward adapters: registered names, column unpacking, robustness and logging."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_rewards import MALFORMED, SOLUTION

REPO = Path(__file__).resolve().parents[1]

NAMES = (
    "external_r1v_acc",
    "external_answer_strict",
    "external_format",
    "external_kg_jac",
    "external_kg_jac_original",
    "external_kg_f1",
)


@pytest.fixture(scope="module")
def rewards(swift_plugin):
    from swift.rewards import orms

    return {name: orms[name](args=None) for name in NAMES}


def test_every_reward_is_registered_and_kg_rewards_share_one_scorer(rewards):
    assert rewards["external_kg_jac"].scorer is rewards["external_kg_f1"].scorer
    assert rewards["external_kg_jac_original"].scorer is rewards["external_kg_jac"].scorer


def test_kg_jac_original_scores_the_original_inputs(rewards):
    from utils.scoring.kg_reward import kg_jaccard_original

    completion = "<think>Small left pleural effusion. No pneumothorax.</think><answer>edema</answer>"
    scorer = rewards["external_kg_jac"].scorer
    expected = kg_jaccard_original(scorer.score([completion], [SOLUTION], inputs="original")[0])
    assert rewards["external_kg_jac_original"]([completion], solution=[SOLUTION]) == [expected]
    assert rewards["external_kg_jac"]([completion], solution=[SOLUTION]) == [1.0] != [expected]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(completions=st.lists(MALFORMED, min_size=1, max_size=6))
def test_adapters_score_any_completion(rewards, completions):
    for name, reward in rewards.items():
        scores = reward(completions, solution=[SOLUTION] * len(completions), trainer_state=None)
        assert len(scores) == len(completions) and all(0.0 <= s <= 1.0 for s in scores), name


def test_kg_adapter_exposes_sub_scores(rewards):
    reward = rewards["external_kg_jac"]
    scores = reward([SOLUTION, "<think>Mild cardiomegaly.</think>"], solution=[SOLUTION, SOLUTION])
    assert scores[0] == 1.0 and scores[1] < 1.0
    assert set(reward.last_metrics) == {"entity_iou", "relation_iou", "num_entities"}
    assert reward.last_metrics["entity_iou"][0] == 1.0 and reward.last_metrics["num_entities"] == [5.0, 2.0]


def test_missing_solution_column_names_the_reward_and_column(rewards):
    with pytest.raises(ValueError, match="external_kg_jac needs a 'solution' column"):
        rewards["external_kg_jac"](["<think>x</think>"])


def test_rewards_are_quiet_by_default_and_debug_logs_on_request(rewards, capfd, monkeypatch):
    from utils.log import get_logger

    rewards["external_kg_jac"]([SOLUTION], solution=[SOLUTION])
    rewards["external_r1v_acc"]([SOLUTION], solution=[SOLUTION])
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    monkeypatch.setenv("CHEX_DEBUG", "1")
    get_logger("rewards")  # the level is read from the environment when a logger is requested
    try:
        rewards["external_kg_jac"]([SOLUTION], solution=[SOLUTION])
        assert "external_kg_jac: [1.0]" in capfd.readouterr().err
    finally:
        monkeypatch.delenv("CHEX_DEBUG")
        get_logger("rewards")


def test_the_launchers_know_every_registered_reward_name():
    """train.sh checks REWARD_FUNCS against utils/knobs.py's lists before ms-swift loads: they must be ms-swift's
    built-in rewards and ours, exactly (this fails when ms-swift adds or drops one, or when we do). Read in a fresh
    process: this one holds the test plugins' rewards too."""
    import json
    import subprocess
    import sys

    from utils.knobs import PROJECT_REWARDS, SWIFT_BUILTIN_REWARDS

    code = "import json; from utils.knobs import registered_rewards; print(json.dumps(registered_rewards([])))"
    registered = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]
    )
    assert sorted(registered) == sorted((*PROJECT_REWARDS, *SWIFT_BUILTIN_REWARDS))
