"""Command line of rexkg.

    python -m rexkg extract --input IN.jsonl --output OUT.jsonl [--field text] [--backend rules|neural] [--think]
    python -m rexkg metric --gt GT.jsonl --pred PRED.jsonl
    python -m rexkg evaluate --gold LABELLED.txt|LABELLED.jsonl [--backend rules|neural] [--json OUT.json]

`extract` reads JSON lines (one object per line, text in `--field`, or bare JSON strings) or an original
evaluation-results JSON (`{"results": [...]}`, text in `--field`, e.g. `explanation` or `generated_text`) and writes
one graph per input record: `{"entities": [{"text", "type", "start", "end"}], "relations": [{"source", "target",
"type"}]}` with relation ends as indices into `entities`. Output goes to `OUT.jsonl.partial`, flushed line by line,
and is renamed to `OUT.jsonl` when complete. Bad input exits with code 2 and a message naming file, line and field.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from rexkg.cli_args import ArgumentParser
from rexkg.extractor import NEURAL_PIPELINES, Extractor
from rexkg.files import InputError, atomic_write_json, read_jsonl
from rexkg.gold import GoldFormatError, load_gold
from rexkg.metrics import corpus_scores, polarity_agreement, typed_word_scores
from rexkg.schema import KnowledgeGraph
from rexkg.text import think_text

logger = logging.getLogger("rexkg")


def read_texts(path: Path, field: str) -> list[str]:
    """Texts of every record of a JSONL file or an evaluation-results JSON, in order (the file is parsed once)."""
    try:
        with open(path, encoding="utf-8") as handle:
            whole = json.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError:
        whole = None  # several JSON values: JSON lines, parsed line by line below
    if isinstance(whole, dict) and isinstance(whole.get("results"), list):
        records, where = whole["results"], "result"
    else:
        records, where = read_jsonl(path), "line"
    texts = []
    for n, record in enumerate(records, 1):
        if isinstance(record, str):
            texts.append(record)
        elif isinstance(record, dict) and isinstance(record.get(field), str):
            texts.append(record[field])
        else:
            raise InputError(f"{path}: {where} {n}: field {field!r} missing or not a string")
    return texts


def run_extract(args: argparse.Namespace) -> int:
    texts = read_texts(Path(args.input), args.field)
    if args.think:
        texts = [think_text(t) for t in texts]
    extractor = Extractor(
        args.backend, args.model_dir, args.tokenizer_dir, batch_size=args.batch_size, pipeline=args.pipeline
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with (
        open(partial, "w", encoding="utf-8") as handle,
        tqdm(total=len(texts), desc="rexkg extract", unit="text", disable=None) as bar,
    ):
        for start in range(0, len(texts), args.batch_size):
            for graph in extractor(texts[start : start + args.batch_size]):
                handle.write(json.dumps(graph.to_json(), ensure_ascii=False) + "\n")
            handle.flush()
            bar.update(min(args.batch_size, len(texts) - start))
    os.replace(partial, output)
    logger.info("%d graphs -> %s", len(texts), output)
    return 0


def _graphs(path: Path) -> list[KnowledgeGraph]:
    graphs = []
    for n, obj in enumerate(read_jsonl(path), 1):
        try:
            graphs.append(KnowledgeGraph.from_json(obj))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path}: line {n}: not a graph ({type(exc).__name__}: {exc})") from None
    return graphs


def run_metric(args: argparse.Namespace) -> int:
    gold, pred = _graphs(Path(args.gt)), _graphs(Path(args.pred))
    if len(gold) != len(pred):
        raise InputError(f"{args.pred}: {len(pred)} graphs but {args.gt} has {len(gold)}; lines must pair up")
    scores = corpus_scores(pred, gold)
    print(f"samples: {len(gold)}")
    print(f"{'':10} {'':6} {'precision':>9} {'recall':>9} {'f1':>9}")
    for name in ("entity", "relation"):
        for mode in ("micro", "macro"):
            p, r, f = (scores[f"{name}_{mode}_{k}"] for k in ("precision", "recall", "f1"))
            print(f"{name:10} {mode:6} {p:9.4f} {r:9.4f} {f:9.4f}")
    if args.json:
        atomic_write_json(args.json, {"samples": len(gold), **scores})
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Score the extractor on labelled texts: typed-word P/R/F1 per type and head-word relation F1."""
    try:
        items = load_gold(args.gold)
    except GoldFormatError as error:
        raise InputError(str(error)) from None
    extractor = Extractor(
        args.backend, args.model_dir, args.tokenizer_dir, batch_size=args.batch_size, pipeline=args.pipeline
    )
    graphs = extractor([item.text for item in items])
    predicted = [
        (
            {(e.text, e.type) for e in graph.entities},
            {(r.source.text, r.target.text, r.type) for r in graph.relations},
        )
        for graph in graphs
    ]
    scores = typed_word_scores(predicted, [(item.entities, item.relations) for item in items])
    print(f"{args.gold}: {len(items)} texts, {scores['relations']['items']} with annotated relations")
    print(f"{'':22} {'precision':>9} {'recall':>9} {'f1':>9} {'gold':>6} {'pred':>6}")
    names = ["typed_words", *sorted(k for k in scores if k not in ("typed_words", "relations")), "relations"]
    for name in names:
        row = scores[name]
        print(
            f"{name:22} {row['precision']:9.3f} {row['recall']:9.3f} {row['f1']:9.3f} "
            f"{row['gold']:6d} {row['predicted']:6d}"
        )
    polarity = polarity_agreement([entities for entities, _ in predicted], [item.entities for item in items])
    print(
        f"polarity (present/absent) on the {polarity['shared']} findings and devices both found: "
        f"{polarity['accuracy']:.3f}"
    )
    if args.json:
        atomic_write_json(args.json, {"gold": str(args.gold), "texts": len(items), **scores, "polarity": polarity})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m rexkg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ext = sub.add_parser("extract", help="extract one knowledge graph per input record")
    ext.add_argument("--input", required=True)
    ext.add_argument("--output", required=True)
    ext.add_argument("--field", default="text", help="text field of each record (default: %(default)s)")
    ext.add_argument("--backend", choices=("rules", "neural"), default="rules")
    ext.add_argument("--think", action="store_true", help="extract from the <think> part of each text only")
    ext.add_argument("--model-dir", help="neural: folder with run_entity/ and run_relation/")
    ext.add_argument("--tokenizer-dir", help="neural: folder with the BiomedBERT vocab.txt")
    ext.add_argument(
        "--pipeline",
        choices=NEURAL_PIPELINES,
        default="rexkg",
        help="neural: rexkg (ReXKG's inference scripts), chexpo (CheX-Phi4MM's wrapper), rexkg_fixed",
    )
    ext.add_argument("--batch-size", type=int, default=64)
    met = sub.add_parser("metric", help="entity and relation P/R/F1 of predicted graphs against references")
    met.add_argument("--gt", required=True)
    met.add_argument("--pred", required=True)
    met.add_argument("--json", help="also write the scores to this JSON file")
    ev = sub.add_parser("evaluate", help="score the extractor on labelled texts (typed words per type, relations)")
    ev.add_argument("--gold", required=True, help=".txt blocks (S:/E:/R:) or .jsonl with text/entities/relations")
    ev.add_argument("--backend", choices=("rules", "neural"), default="rules")
    ev.add_argument("--model-dir", help="neural: folder with run_entity/ and run_relation/")
    ev.add_argument("--tokenizer-dir", help="neural: folder with the BiomedBERT vocab.txt")
    ev.add_argument(
        "--pipeline",
        choices=NEURAL_PIPELINES,
        default="rexkg",
        help="neural: rexkg (ReXKG's inference scripts), chexpo (CheX-Phi4MM's wrapper), rexkg_fixed",
    )
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--json", help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("REXKG_LOG_LEVEL", "INFO"), format="%(message)s")
    try:
        commands = {"extract": run_extract, "metric": run_metric, "evaluate": run_evaluate}
        return commands[args.command](args)
    except (InputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
