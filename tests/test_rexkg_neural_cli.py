"""The ReXKG neural backend on tiny random checkpoints in ReXKG's layout, the metrics, and the rexkg CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rexkg
from rexkg.metrics import corpus_scores, graph_scores, jaccard, precision_recall_f1
from rexkg.neural import NeuralExtractor, save_random_checkpoint
from rexkg.rules import extract_rules
from rexkg.schema import ENTITY_TYPES, RELATION_TYPES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rexkg_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("rexkg")
    save_random_checkpoint(root / "result1", root / "BiomedNLP")
    return root / "result1", root / "BiomedNLP"


def test_neural_backend_loads_releases_layout_and_extracts(rexkg_assets):
    model_dir, tokenizer_dir = rexkg_assets
    extractor = rexkg.Extractor("neural", model_dir, tokenizer_dir, batch_size=4)
    texts = ["Small left pleural effusion. No pneumothorax.", "", "<think>The lungs are clear.</think>", "x"]
    graphs = extractor(texts)
    assert len(graphs) == 4 and graphs[1].entities == [] and graphs[3].entities == []
    assert graphs[0].entities, "random weights still label some spans"
    for text, graph in zip(texts, graphs):
        for entity in graph.entities:
            # ReXKG's word text (lower-cased, words joined by one space) over the words' character span.
            assert entity.text.replace(" ", "") == text[entity.start : entity.end].lower().replace(" ", "")
            assert entity.type in ENTITY_TYPES
        assert all(r.type in RELATION_TYPES for r in graph.relations)
    assert extractor._neural.ner.training is False
    assert extractor._neural.device == torch.device("cpu")


def test_neural_backend_is_loaded_once_per_process(rexkg_assets):
    model_dir, tokenizer_dir = (str(p) for p in rexkg_assets)
    first = rexkg.get_extractor("neural", model_dir, tokenizer_dir)
    assert rexkg.get_extractor("neural", model_dir, tokenizer_dir) is first


def test_neural_batching_does_not_change_results(rexkg_assets):
    model_dir, tokenizer_dir = rexkg_assets
    texts = [f"There is a {w} left pleural effusion. Mild edema." for w in ("small", "large", "new")] * 3
    one = NeuralExtractor.from_dirs(model_dir, tokenizer_dir, batch_size=1).extract(texts)
    many = NeuralExtractor.from_dirs(model_dir, tokenizer_dir, batch_size=16).extract(texts)
    assert [g.entity_keys() for g in one] == [g.entity_keys() for g in many]
    assert [g.relation_keys() for g in one] == [g.relation_keys() for g in many]


@pytest.mark.parametrize(
    "missing,expected",
    [
        ("BiomedNLP/vocab.txt", "vocab.txt"),
        ("result1/run_entity/pytorch_model.bin", "pytorch_model.bin"),
        ("result1/run_relation", "run_relation"),
    ],
)
def test_missing_asset_error_names_the_path(tmp_path, missing, expected):
    save_random_checkpoint(tmp_path / "result1", tmp_path / "BiomedNLP")
    target = tmp_path / missing
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(FileNotFoundError, match=expected) as info:
        NeuralExtractor.from_dirs(tmp_path / "result1", tmp_path / "BiomedNLP")
    assert str(tmp_path) in str(info.value)


def test_metric_conventions():
    assert jaccard(set(), set()) == 1.0 and jaccard({1}, set()) == 0.0
    assert precision_recall_f1(set(), set()) == (1.0, 1.0, 1.0)
    assert precision_recall_f1(set(), {1}) == (0.0, 0.0, 0.0)
    same = graph_scores(extract_rules("Small effusion."), extract_rules("Small effusion."))
    assert same["entity_f1"] == same["relation_jaccard"] == 1.0
    differ = graph_scores(extract_rules("No effusion."), extract_rules("Small effusion."))
    assert differ["entity_jaccard"] == 0.0  # same word, different type: no credit
    with pytest.raises(ValueError):
        corpus_scores([], [extract_rules("x")])


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rexkg", *args], capture_output=True, text=True, cwd=cwd or REPO)


def test_cli_extract_jsonl_and_results_json_then_metric(tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"text": "Small left pleural effusion."}) + "\n" + json.dumps({"text": ""}) + "\n")
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "results": [
                    {"generated_text": "<think>Small left pleural effusion.</think><answer>yes</answer>"},
                    {"generated_text": "<think></think><answer>no</answer>"},
                ],
                "accuracy": 1.0,
                "num_samples": 2,
            }
        )
    )
    done = _cli("extract", "--input", str(jsonl), "--output", str(tmp_path / "gt.jsonl"))
    assert done.returncode == 0, done.stderr
    done = _cli(
        "extract",
        "--input",
        str(results),
        "--field",
        "generated_text",
        "--think",
        "--output",
        str(tmp_path / "pred.jsonl"),
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["entities"][0] == {"text": "Small", "type": "concept", "start": 0, "end": 5}
    assert {"source": 3, "target": 2, "type": "located_at"} in lines[0]["relations"]
    done = _cli("metric", "--gt", str(tmp_path / "gt.jsonl"), "--pred", str(tmp_path / "pred.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "relation   micro     1.0000" in done.stdout and "entity     macro" in done.stdout


def test_cli_bad_input_exits_2_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "wrong field"}\n')
    done = _cli("extract", "--input", str(bad), "--output", str(tmp_path / "out.jsonl"))
    assert done.returncode == 2 and "line 2" in done.stderr and "'text'" in done.stderr
    assert not list(tmp_path.glob("out.jsonl*"))
    bad.write_text('{"text": "fine"}\n{not json\n')
    done = _cli("extract", "--input", str(bad), "--output", str(tmp_path / "out.jsonl"))
    assert done.returncode == 2 and "line 2" in done.stderr
    done = _cli("metric", "--gt", str(bad), "--pred", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2
