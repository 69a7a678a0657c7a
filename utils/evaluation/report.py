"""A self-contained HTML report of token probabilities: open the file in a browser, no server, no network.

Each generated token is a `<span class="tok">` shaded from white (p = 1) to red (p = 0); hovering shows its
probability and the top alternatives. Tokens below the low-confidence threshold are outlined. Wrong answers come
first, each listed in an index with its least confident token, and a checkbox hides correct answers.

>>> page = render_report([{"id": 0, "question": "Q?", "answer": ["yes"], "generated_text": "no",
...     "is_correct": False, "generated_tokens": ["no"], "token_probabilities": [0.2]}], "demo")
>>> '<span class="tok low"' in page and "p=0.200" in page
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.sample { border: 1px solid #ccc; border-radius: 6px; padding: .6em .9em; margin: .8em 0; }
.sample.wrong { border-left: 6px solid #c62828; } .sample.right { border-left: 6px solid #2e7d32; }
.tokens { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.9; }
.tok { border-radius: 3px; padding: 1px 0; }
.tok.low { outline: 2px solid #b71c1c; }
.meta { color: #555; font-size: .9em; } .badge { font-weight: bold; }
body.hide-correct .sample.right { display: none; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
"""


def _shade(probability: float) -> str:
    alpha = max(0.0, min(1.0, 1.0 - probability))
    return f"background: rgba(229, 57, 53, {alpha:.2f})"


def _token_title(probability: float, alternatives: Sequence[dict]) -> str:
    parts = [f"p={probability:.3f}"]
    parts += [f"{alt['token']!r} {2.718281828459045 ** alt['logprob']:.3f}" for alt in alternatives]
    return " | ".join(parts)


def render_report(results: Sequence[dict], title: str, low_threshold: float = 0.5) -> str:
    """The report page for evaluation results that carry `generated_tokens` and `token_probabilities`."""
    ordered = sorted(results, key=lambda r: (bool(r.get("is_correct")), r["id"]))
    wrong = [r for r in ordered if not r.get("is_correct")]
    rows = []
    for r in wrong:
        probabilities = r.get("token_probabilities") or []
        tokens = r.get("generated_tokens") or []
        if probabilities:
            k = min(range(len(probabilities)), key=probabilities.__getitem__)
            weakest = f"{html.escape(repr(tokens[k]))} ({probabilities[k]:.3f})"
        else:
            weakest = html.escape(r.get("error") or "no tokens")
        link = f'<a href="#s{r["id"]}">#{r["id"]}</a>'
        rows.append(f"<tr><td>{link}</td><td>{html.escape(r['question'])}</td><td>{weakest}</td></tr>")
    samples = [_render_sample(r, low_threshold) for r in ordered]
    accuracy = sum(bool(r.get("is_correct")) for r in results) / len(results) if results else 0.0
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">{len(results)} samples, accuracy {accuracy:.3f}, {len(wrong)} wrong. Tokens are shaded '
            f"by probability (white = certain, red = unlikely); tokens with p &lt; {low_threshold} are outlined; "
            "hover a token for its probability and alternatives.</p>",
            '<label><input type="checkbox" onchange="document.body.classList.toggle(\'hide-correct\', this.checked)">'
            " show wrong answers only</label>",
            "<h2>Wrong answers</h2>",
            "<table><tr><th>sample</th><th>question</th><th>least confident token</th></tr>",
            *rows,
            "</table>",
            "<h2>Samples</h2>",
            *samples,
            "</body></html>",
        ]
    )


def _render_sample(result: dict, low_threshold: float) -> str:
    tokens = result.get("generated_tokens") or []
    probabilities = result.get("token_probabilities") or []
    alternatives = result.get("top_alternatives") or [[] for _ in tokens]
    spans = []
    for token, probability, alts in zip(tokens, probabilities, alternatives):
        low = " low" if probability < low_threshold else ""
        spans.append(
            f'<span class="tok{low}" style="{_shade(probability)}" '
            f'title="{html.escape(_token_title(probability, alts))}">{html.escape(token)}</span>'
        )
    correct = bool(result.get("is_correct"))
    answer = result["answer"] if isinstance(result["answer"], str) else ", ".join(result["answer"])
    error = f'<p class="meta">error: {html.escape(result["error"])}</p>' if result.get("error") else ""
    return (
        f'<div class="sample {"right" if correct else "wrong"}" id="s{result["id"]}">'
        f'<p><span class="badge">#{result["id"]} {"correct" if correct else "wrong"}</span> '
        f"{html.escape(result['question'])}</p>"
        f'<p class="meta">reference: {html.escape(answer)}</p>{error}'
        f'<div class="tokens">{"".join(spans)}</div></div>'
    )
