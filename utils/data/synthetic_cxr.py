"""Synthetic chest-X-ray-like studies and MIMIC-CXR-VQA-style annotations, reproducible from a seed.

Every study is a small grayscale radiograph drawn with PIL (two lung fields, a heart shadow, spine, diaphragm) plus
the findings it carries: a focal opacity in one lung zone, a basal pleural effusion, cardiomegaly, a line or tube
along its own course, breast shadows for a female patient and the scapulae over the upper lungs on an AP film.
Questions and the `<think>…</think><answer>…</answer>` explanations are written from the same findings, in
radiology language (each explanation states the findings its question turns on), so answers are grounded in pixels
and the KG reward has entities and relations to compare.

>>> study = make_study(random.Random(0))
>>> sorted(study)[:3]
['cardiomegaly', 'device', 'effusion']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDES = ("right", "left")
ZONES = ("upper", "middle", "lower")
# Each device's course (image coordinates, as fractions of the size; the patient's right is the image's left):
# the endotracheal tube ends above the carina, the nasogastric tube runs down past the diaphragm into the stomach,
# the right internal jugular line comes down from the right neck, the PICC line in from the right arm.
DEVICE_COURSES = {
    "endotracheal tube": ((0.50, 0.0), (0.50, 0.30)),
    "nasogastric tube": ((0.50, 0.0), (0.50, 0.80), (0.62, 0.95)),
    "right internal jugular central venous catheter": ((0.36, 0.0), (0.44, 0.16), (0.47, 0.40)),
    "PICC line": ((0.0, 0.22), (0.20, 0.18), (0.40, 0.22), (0.47, 0.40)),
}
DEVICES = tuple(DEVICE_COURSES)
VIEW_QUESTION = "What is the view of this image, PA or AP?"
LOCATION_QUESTION = "Where is the focal opacity located?"
SIDE_QUESTION = "Which side is the pleural effusion on, left or right?"
CHANGE_QUESTION = "Compared with the prior study, how has the pleural effusion changed?"
EFFUSION_PRESENCE_QUESTION = "Is there any evidence of pleural effusion in this image?"
SPLITS = ("test_basic_vqa", "test_compare_vqa", "test_region_vqa", "valid_all_vqa")
# How often the simulated SFT model answered a validation item correctly: hard-example mining needs both kinds.
SFT_ACCURACY = 0.6


@dataclass(frozen=True)
class Opacity:
    side: str
    zone: str


@dataclass(frozen=True)
class Effusion:
    side: str
    size: str  # "small" | "moderate"


def make_study(rng: random.Random) -> dict:
    """Draw one study's findings.

    >>> make_study(random.Random(1))["view"] in ("PA", "AP")
    True
    """
    return {
        "opacity": Opacity(rng.choice(SIDES), rng.choice(ZONES)) if rng.random() < 0.45 else None,
        "effusion": Effusion(rng.choice(SIDES), rng.choice(("small", "moderate"))) if rng.random() < 0.4 else None,
        "cardiomegaly": rng.random() < 0.35,
        "device": rng.choice(DEVICES) if rng.random() < 0.35 else None,
        "view": rng.choice(("PA", "AP")),
        "gender": rng.choice(("male", "female")),
    }


# --------------------------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------------------------
def _lung_box(side: str, size: int) -> tuple[float, float, float, float]:
    # Radiographs are displayed with the patient's right on the image's left.
    if side == "right":
        return (0.10 * size, 0.14 * size, 0.46 * size, 0.86 * size)
    return (0.54 * size, 0.14 * size, 0.90 * size, 0.86 * size)


def render_study(study: dict, size: int, rng: random.Random) -> Image.Image:
    """Render a study as a grayscale PNG-ready image of `size` x `size` pixels.

    >>> render_study(make_study(random.Random(0)), 64, random.Random(0)).size
    (64, 64)
    """
    img = Image.new("L", (size, size), 20)
    draw = ImageDraw.Draw(img)
    draw.ellipse((0.02 * size, 0.05 * size, 0.98 * size, 1.10 * size), fill=120)  # soft tissue of the chest
    for side in SIDES:
        draw.ellipse(_lung_box(side, size), fill=45)  # aerated lungs are dark
    draw.rectangle((0.47 * size, 0.0, 0.53 * size, size), fill=170)  # spine and mediastinum
    if study["gender"] == "female":  # breast soft tissue over both lower lung fields
        for side in SIDES:
            x0, _, x1, y1 = _lung_box(side, size)
            draw.ellipse((x0 - 0.04 * size, y1 - 0.30 * size, x1 - 0.10 * size, y1 + 0.04 * size), fill=80)
    # on an AP film the scapulae are not rotated off the lungs: they overlie the upper fields
    if study["view"] == "AP":
        for side in SIDES:
            x0, y0, x1, _ = _lung_box(side, size)
            edge = x0 if side == "right" else x1 - 0.12 * size
            draw.ellipse((edge, y0 + 0.02 * size, edge + 0.12 * size, y0 + 0.30 * size), fill=95)
    heart_half_width = 0.22 if study["cardiomegaly"] else 0.13
    draw.ellipse(
        (0.50 * size - heart_half_width * size, 0.52 * size, 0.56 * size + heart_half_width * size, 0.84 * size),
        fill=185,
    )
    draw.rectangle((0.0, 0.86 * size, size, size), fill=150)  # diaphragm and abdomen
    if study["opacity"] is not None:
        x0, y0, x1, y1 = _lung_box(study["opacity"].side, size)
        zone_top = y0 + ZONES.index(study["opacity"].zone) * (y1 - y0) / 3
        cx, cy = (x0 + x1) / 2 + rng.uniform(-0.04, 0.04) * size, zone_top + (y1 - y0) / 6
        r = rng.uniform(0.06, 0.09) * size
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=150)
    if study["effusion"] is not None:
        x0, y0, x1, y1 = _lung_box(study["effusion"].side, size)
        depth = (0.14 if study["effusion"].size == "small" else 0.26) * (y1 - y0)
        draw.ellipse((x0, y1 - depth, x1, y1 + depth), fill=160)  # fluid layering at the base
    if study["device"] is not None:
        course = [(x * size, y * size) for x, y in DEVICE_COURSES[study["device"]]]
        draw.line(course, fill=250, width=max(1, size // 64), joint="curve")
    img = img.filter(ImageFilter.GaussianBlur(radius=size / 96))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, (size, size))
    pixels = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="L")


# --------------------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------------------
def describe(study: dict) -> dict[str, str]:
    """One radiology sentence per finding of a study, by topic (opacity, effusion, heart, device, pneumothorax).

    >>> describe({"opacity": None, "effusion": None, "cardiomegaly": False, "device": None})["opacity"]
    'The lungs are clear without focal consolidation.'
    """
    findings = {}
    if study["opacity"] is None:
        findings["opacity"] = "The lungs are clear without focal consolidation."
    else:
        o = study["opacity"]
        findings["opacity"] = f"There is a focal opacity in the {o.side} {o.zone} lung zone, concerning for pneumonia."
    if study["effusion"] is None:
        findings["effusion"] = "There is no pleural effusion."
    else:
        e = study["effusion"]
        findings["effusion"] = (
            f"A {e.size} {e.side} pleural effusion is present with blunting of the {e.side} costophrenic angle."
        )
    if study["cardiomegaly"]:
        findings["heart"] = "The cardiac silhouette is enlarged, consistent with cardiomegaly."
    else:
        findings["heart"] = "The cardiomediastinal silhouette is normal in size."
    if study["device"] is not None:
        article = "An" if study["device"][0] in "aeiou" else "A"
        findings["device"] = f"{article} {study['device']} is in place."
    findings["pneumothorax"] = "There is no pneumothorax."
    return findings


def _abnormal_findings(study: dict) -> str:
    """The sentences of a study's abnormal findings, or the normal lungs and heart when there are none."""
    findings = describe(study)
    abnormal = [
        findings[topic]
        for topic, present in (
            ("opacity", study["opacity"] is not None),
            ("effusion", study["effusion"] is not None),
            ("heart", study["cardiomegaly"]),
            ("device", study["device"] is not None),
        )
        if present
    ]
    return " ".join(abnormal) if abnormal else f"{findings['opacity']} {findings['heart']}"


def abnormalities(study: dict) -> list[str]:
    """MIMIC-CXR-VQA-style abnormality names present in a study."""
    names = []
    if study["opacity"] is not None:
        names.append("lung opacity")
    if study["effusion"] is not None:
        names.append("pleural effusion")
    if study["cardiomegaly"]:
        names.append("cardiomegaly")
    if study["device"] is not None:
        names.append(study["device"])
    return names


# The one question the synthetic images cannot answer: no study has a pneumothorax, so its answer never depends on
# the pixels. Everything else asked is drawn, sex and projection included.
_IMAGE_BLIND = ("Is there any evidence of pneumo",)


def decided_by_image(question: str) -> bool:
    """Whether the pixels of a synthetic study decide the answer (what a model must read the image for).

    >>> decided_by_image("Is this patient male or female?"), decided_by_image("Is there any evidence of pneumothorax?")
    (True, False)
    """
    return not question.startswith(_IMAGE_BLIND)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def basic_question(study: dict, rng: random.Random) -> tuple[str, list[str], str, str, str, str]:
    """One single-image question: (question, answers, reasoning, semantic_type, question_type, answer_type)."""
    kind = rng.choice(("presence", "abnormality", "abnormality_query", "size", "plane", "gender", "attribute"))
    if kind == "presence":
        return presence_question(study, rng.choice(("pleural effusion", "lung opacity", "pneumothorax")))
    if kind == "abnormality":
        found = abnormalities(study)
        return (
            "Are there any abnormalities in this chest x-ray?",
            [_yes_no(bool(found))],
            f"{_abnormal_findings(study)} Therefore the study is {'abnormal' if found else 'normal'}.",
            "abnormality",
            "verify",
            "closed",
        )
    if kind == "abnormality_query" and abnormalities(study):
        found = abnormalities(study)
        return (
            "List all abnormalities seen in this image.",
            found,
            f"{_abnormal_findings(study)} These findings are the abnormalities.",
            "abnormality",
            "query",
            "open",
        )
    if kind == "size":
        return (
            "Is the cardiac silhouette enlarged?",
            [_yes_no(study["cardiomegaly"])],
            f"{describe(study)['heart']} The heart size answers the question.",
            "size",
            "verify",
            "closed",
        )
    if kind == "attribute" and study["device"] is not None:
        return (
            "Which line or tube is visible in this image?",
            [study["device"]],
            f"{describe(study)['device']} The device is identified by its course.",
            "attribute",
            "query",
            "open",
        )
    if kind == "gender":
        return (
            "Is this patient male or female?",
            [study["gender"]],
            f"The soft tissues suggest a {study['gender']} patient.",
            "gender",
            "choose",
            "closed",
        )
    return view_question(study)


def presence_question(study: dict, target: str) -> tuple[str, list[str], str, str, str, str]:
    """Is there any evidence of `target` (pleural effusion, lung opacity or pneumothorax)?"""
    present = target in abnormalities(study)
    topic = {"pleural effusion": "effusion", "lung opacity": "opacity", "pneumothorax": "pneumothorax"}[target]
    return (
        f"Is there any evidence of {target} in this image?",
        [_yes_no(present)],
        f"{describe(study)[topic]} Therefore {target} is {'present' if present else 'absent'}.",
        "presence",
        "verify",
        "closed",
    )


def view_question(study: dict) -> tuple[str, list[str], str, str, str, str]:
    """PA or AP?"""
    return (
        VIEW_QUESTION,
        [study["view"]],
        f"The positioning indicates a {study['view']} projection.",
        "plane",
        "choose",
        "closed",
    )


def opacity_location_question(study: dict) -> tuple[str, list[str], str, str, str, str]:
    """Where is the focal opacity? (The study has one.)"""
    o = study["opacity"]
    return (
        LOCATION_QUESTION,
        [f"{o.side} {o.zone} lung zone"],
        f"{describe(study)['opacity']} The opacity projects over the {o.side} {o.zone} lung zone.",
        "anatomy",
        "query",
        "open",
    )


def effusion_side_question(study: dict) -> tuple[str, list[str], str, str, str, str]:
    """Which side is the pleural effusion on? (The study has one.)"""
    e = study["effusion"]
    return (
        SIDE_QUESTION,
        [e.side],
        f"{describe(study)['effusion']} The effusion is on the {e.side}.",
        "anatomy",
        "choose",
        "closed",
    )


def region_question(study: dict, rng: random.Random) -> tuple[str, list[str], str, str, str, str]:
    """A question about one anatomical region."""
    if study["opacity"] is not None and rng.random() < 0.5:
        return opacity_location_question(study)
    if study["effusion"] is not None and rng.random() < 0.5:
        return effusion_side_question(study)
    side, zone = rng.choice(SIDES), rng.choice(ZONES)
    o = study["opacity"]
    present = o is not None and (o.side, o.zone) == (side, zone)
    return (
        f"Is there any abnormality in the {side} {zone} lung zone?",
        [_yes_no(present)],
        f"{describe(study)['opacity']} Therefore the {side} {zone} lung zone is "
        f"{'abnormal' if present else 'normal'}.",
        "abnormality",
        "verify",
        "closed",
    )


def compare_question(
    prior: dict, current: dict, rng: random.Random | None = None
) -> tuple[str, list[str], str, str, str, str]:
    """A two-study question about change since the prior study (`rng` is unused: one question is asked)."""
    before, after = prior["effusion"] is not None, current["effusion"] is not None
    if before and after:
        change = "unchanged"
    elif after:
        change = "new"
    elif before:
        change = "resolved"
    else:
        change = "absent"
    reasoning = {
        "unchanged": "Compared with the prior study, the pleural effusion is unchanged.",
        "new": "Compared with the prior study, there is a new pleural effusion.",
        "resolved": "Compared with the prior study, the pleural effusion has resolved.",
        "absent": "Compared with the prior study, there is still no pleural effusion.",
    }[change]
    return (
        CHANGE_QUESTION,
        [change],
        reasoning,
        "abnormality",
        "query",
        "open",
    )


# --------------------------------------------------------------------------------------------------------------
# The teacher: SFT explanations with stated errors
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Teacher:
    """The error rates of a teacher that writes the SFT explanations, as chain-of-thought distilled from a language
    model has. Each rate applies to its kind of question only (`teacher_error_kind`); the evaluation and GRPO
    references stay true.

    - `under_call`: a small pleural effusion is called absent (the effusion presence and change questions);
    - `wrong_side`: the other side is named, in reasoning and answer (effusion side, opacity location);
    - `contradiction`: the view question's reasoning names the other projection while its answer stays right.

    >>> Teacher(under_call=0.5).rates()
    {'under_call': 0.5, 'wrong_side': 0.0, 'contradiction': 0.0}
    """

    under_call: float = 0.0
    wrong_side: float = 0.0
    contradiction: float = 0.0

    def rates(self) -> dict[str, float]:
        return {kind: getattr(self, kind) for kind in TEACHER_ERROR_KINDS}


TEACHER_ERROR_KINDS = ("under_call", "wrong_side", "contradiction")
# The kinds whose error changes the answer: the items where a model that learnt the teacher's errors answers wrong.
ANSWER_CHANGING_ERRORS = ("under_call", "wrong_side")
_OTHER_SIDE = {"right": "left", "left": "right"}


def teacher_error_kind(studies: Sequence[dict], question: str) -> str | None:
    """The error the teacher can make on a question about `studies` (prior first), or None.

    >>> teacher_error_kind([{"effusion": Effusion("left", "small")}], EFFUSION_PRESENCE_QUESTION)
    'under_call'
    >>> teacher_error_kind([{"effusion": Effusion("left", "moderate")}], EFFUSION_PRESENCE_QUESTION) is None
    True
    """
    effusion = studies[-1]["effusion"]
    if question in (EFFUSION_PRESENCE_QUESTION, CHANGE_QUESTION) and effusion is not None and effusion.size == "small":
        return "under_call"
    if question in (SIDE_QUESTION, LOCATION_QUESTION):
        return "wrong_side"
    if question == VIEW_QUESTION:
        return "contradiction"
    return None


def teacher_explanation(studies: Sequence[dict], question: str, kind: str) -> str:
    """The explanation the teacher writes when it makes the error `kind` on this question.

    >>> study = {"effusion": Effusion("left", "small"), "opacity": None, "cardiomegaly": False, "device": None}
    >>> teacher_explanation([study], SIDE_QUESTION, "wrong_side")
    '<think>A small right pleural effusion is present with blunting of the right costophrenic angle. The effusion is \
on the right.</think><answer>right</answer>'
    """
    current = studies[-1]
    if kind == "under_call":
        missed = {**current, "effusion": None}
        if question == CHANGE_QUESTION:
            _, answers, reasoning, *_ = compare_question(studies[0], missed)
        else:
            _, answers, reasoning, *_ = presence_question(missed, "pleural effusion")
    elif kind == "wrong_side" and question == SIDE_QUESTION:
        e = current["effusion"]
        _, answers, reasoning, *_ = effusion_side_question(
            {**current, "effusion": Effusion(_OTHER_SIDE[e.side], e.size)}
        )
    elif kind == "wrong_side":
        o = current["opacity"]
        _, answers, reasoning, *_ = opacity_location_question(
            {**current, "opacity": Opacity(_OTHER_SIDE[o.side], o.zone)}
        )
    elif kind == "contradiction":
        answers = [current["view"]]
        _, _, reasoning, *_ = view_question({**current, "view": "AP" if current["view"] == "PA" else "PA"})
    else:
        raise ValueError(f"no teacher error {kind!r} for the question {question!r}")
    return explanation(reasoning, answers)


def teacher_rows(rows: Sequence[dict], studies: dict[str, dict], teacher: Teacher, rng: random.Random) -> list[dict]:
    """The SFT rows the teacher writes for annotation `rows` (`studies` by image id): each row of a kind the teacher
    errs on gets, at that kind's rate, the teacher's explanation, and `teacher_error` names the error (None: the
    true explanation). One draw per row, in order, so a seed gives the same rows."""
    written = []
    for row in rows:
        kind = teacher_error_kind([studies[stem] for stem in row["image_ids"]], row["question"])
        erred = kind is not None and rng.random() < getattr(teacher, kind)
        text = (
            teacher_explanation([studies[stem] for stem in row["image_ids"]], row["question"], kind) if erred else None
        )
        written.append({**row, "explanation": text or row["explanation"], "teacher_error": kind if erred else None})
    return written


def explanation(reasoning: str, answers: list[str]) -> str:
    """The chain-of-thought target: the findings the question turns on and the step that answers (the question's
    `reasoning`), then the answer span. Focused, as a radiologist answers one question, and short enough that a tiny
    model can learn the whole format from a few hundred examples."""
    return f"<think>{reasoning}</think><answer>{', '.join(answers)}</answer>"


def split_items(split: str, count: int, rng: random.Random) -> list[tuple[list[dict], tuple]]:
    """Studies (one, or prior + current for comparisons) and their question, for one split."""
    items = []
    for _ in range(count):
        kind = split if split != "valid_all_vqa" else rng.choice(SPLITS[:3])
        current = make_study(rng)
        if kind == "test_compare_vqa":
            prior = make_study(rng)
            items.append(([prior, current], compare_question(prior, current, rng)))
        elif kind == "test_region_vqa":
            items.append(([current], region_question(current, rng)))
        else:
            items.append(([current], basic_question(current, rng)))
    return items


def _stem(rng: random.Random) -> str:
    # MIMIC-CXR image ids are long hex dicom ids; mimic their shape so path handling is exercised realistically.
    return "-".join(f"{rng.getrandbits(32):08x}" for _ in range(5))


def build_annotations(split: str, count: int, rng: random.Random) -> tuple[list[dict], dict[str, dict]]:
    """Annotations of one split in the original evaluation format, and the studies their image ids name.

    >>> rows, studies = build_annotations("test_basic_vqa", 2, random.Random(0))
    >>> sorted(rows[0])[:4], len(studies)
    (['answer', 'answer_type', 'explanation', 'idx'], 2)
    """
    rows, studies = [], {}
    for idx, (study_list, question) in enumerate(split_items(split, count, rng)):
        text, answers, reasoning, semantic_type, question_type, answer_type = question
        stems = [_stem(rng) for _ in study_list]
        studies.update(zip(stems, study_list))
        rows.append(
            {
                "image_ids": stems,
                "question": text,
                "answer": answers,
                "explanation": explanation(reasoning, answers),
                "semantic_type": semantic_type,
                "question_type": question_type,
                "answer_type": answer_type,
                "is_correct": rng.random() < SFT_ACCURACY,
                "idx": idx,
                "subject_id": 10_000_000 + rng.randrange(1_000_000),
                "study_id": 50_000_000 + rng.randrange(1_000_000),
            }
        )
    return rows, studies


def corpus(seed: int = 0, count: int = 400) -> list[str]:
    """Text the tiny tokenizer is trained on: questions, explanations and answers of a generated pool.

    >>> any("<think>" in line for line in corpus(0, 10))
    True
    """
    rng = random.Random(seed)
    lines = []
    for split in SPLITS:
        rows, _ = build_annotations(split, count, rng)
        for row in rows:
            lines += [row["question"], row["explanation"], ", ".join(row["answer"])]
    return lines
