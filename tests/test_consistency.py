"""Reasoning that supports its answer: `utils.scoring.consistency` on hand-written responses to every question type
of the synthetic data (utils/data/synthetic_cxr.py) and to MIMIC-CXR-VQA-style templates. Each expected verdict is
written from what the question and the response mean, never by running the check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.scoring.consistency import CONSISTENT, CONTRADICTS, UNCHECKED, check, consistency_reward


def _response(reasoning: str, answer: str) -> str:
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


CASES = [
    # presence: the reasoning states the finding one way, the answer says the other
    ("Is there any evidence of pleural effusion in this image?",
     "A moderate right pleural effusion is present. Therefore pleural effusion is present.", "yes", CONSISTENT),
    ("Is there any evidence of pleural effusion in this image?",
     "There is no pleural effusion. Therefore pleural effusion is absent.", "yes", CONTRADICTS),
    ("Is there any evidence of lung opacity in this image?",
     "There is a focal opacity in the left middle lung zone.", "no", CONTRADICTS),
    ("Is there any evidence of pneumothorax in this image?", "There is no pneumothorax.", "no", CONSISTENT),
    ("Is there any evidence of pneumothorax in this image?", "The lungs are clear.", "no", UNCHECKED),
    ("Is the cardiac silhouette enlarged?", "The cardiomediastinal silhouette is normal in size.", "no", UNCHECKED),
    ("Is there any evidence of atelectasis in the left lung?", "Left basilar atelectasis is present.", "no",
     CONTRADICTS),
    ("Does the patient have pneumonia?", "Pneumonia is unlikely.", "yes", CONTRADICTS),
    ("Is there any abnormality in the left upper lung zone?",
     "There is a focal opacity in the right upper lung zone. Therefore the left upper lung zone is normal.", "no",
     UNCHECKED),
    # side and location
    ("Which side is the pleural effusion on, left or right?",
     "A small left pleural effusion is present. The effusion is on the left.", "left", CONSISTENT),
    ("Which side is the pleural effusion on, left or right?",
     "A small left pleural effusion is present. The effusion is on the left.", "right", CONTRADICTS),
    ("Which side is the pleural effusion on, left or right?", "There are bilateral effusions, left and right.",
     "left", UNCHECKED),
    ("Where is the focal opacity located?", "There is a focal opacity in the right middle lung zone.",
     "right middle lung zone", CONSISTENT),
    ("Where is the focal opacity located?", "There is a focal opacity in the right middle lung zone.",
     "right lower lung zone", CONTRADICTS),
    ("Where is the focal opacity located?", "There is a focal opacity in the right middle lung zone.",
     "left middle lung zone", CONTRADICTS),
    ("Which anatomical location is related to the pleural effusion, the left or right lung?",
     "A right pleural effusion is seen.", "right lung", CONSISTENT),
    # view
    ("What is the view of this image, PA or AP?", "The positioning indicates a AP projection.", "PA", CONTRADICTS),
    ("What is the view of this image, PA or AP?", "The positioning indicates a PA projection.", "PA", CONSISTENT),
    ("What is the view of this image, PA or AP?", "The image is of good quality.", "AP", UNCHECKED),
    # sex
    ("Is this patient male or female?", "The soft tissues suggest a male patient.", "female", CONTRADICTS),
    ("Is this patient male or female?", "Breast shadows suggest a female patient.", "female", CONSISTENT),
    # change against a prior study
    ("Compared with the prior study, how has the pleural effusion changed?",
     "Compared with the prior study, there is a new pleural effusion.", "new", CONSISTENT),
    ("Compared with the prior study, how has the pleural effusion changed?",
     "Compared with the prior study, the pleural effusion has resolved.", "worse", CONTRADICTS),
    ("Compared with the prior study, how has the pleural effusion changed?",
     "The pleural effusion is unchanged from the prior study.", "unchanged", CONSISTENT),
    # no check for these: the answer is a name, a list
    ("Which line or tube is visible in this image?", "A nasogastric tube is in place.", "nasogastric tube", UNCHECKED),
    ("List all abnormalities seen in this image.", "There is a left pleural effusion.", "pleural effusion",
     UNCHECKED),
]  # fmt: skip


@pytest.mark.parametrize(("question", "reasoning", "answer", "verdict"), CASES)
def test_the_verdict_is_what_the_response_means(question, reasoning, answer, verdict):
    result = check(question, _response(reasoning, answer))
    assert result.verdict == verdict, result.reason
    assert consistency_reward(question, _response(reasoning, answer)) == (0.0 if verdict == CONTRADICTS else 1.0)


def test_a_response_without_an_answer_is_not_checked():
    assert check(
        "What is the view of this image, PA or AP?", "The positioning indicates a AP projection."
    ).verdict == (UNCHECKED)


@settings(max_examples=300, deadline=None)
@given(question=st.text(max_size=80), response=st.one_of(st.text(max_size=400), st.none(), st.integers()))
def test_the_reward_never_raises_and_is_zero_or_one(question, response):
    assert consistency_reward(question, response) in (0.0, 1.0)
