"""The frame every report page shares: one HTML file with its style, its scripts and its data embedded.

A page works offline and can be mailed: the X-rays are data URIs (downscaled so that a 1,000-sample report stays a
few MB per hundred images), the data is one JSON block, and the scripts render it in the browser, a page of samples
at a time, so a large report opens quickly.

>>> page = html_page("demo", {"samples": []}, "report.js")
>>> page.startswith("<!DOCTYPE html>") and '<script type="application/json" id="data">' in page
True
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from pathlib import Path

STATIC = Path(__file__).with_name("static")
logger = logging.getLogger(__name__)

# The long side of an embedded X-ray: enough to read a finding when enlarged, small enough for a big report.
DEFAULT_IMAGE_SIDE = 512


def script_json(payload: object) -> str:
    """JSON that is safe inside a <script> element (no `</script>` or `<!--` can end it early).

    >>> script_json({"t": "</script>"})
    '{"t": "\\\\u003c/script>"}'
    """
    return json.dumps(payload, ensure_ascii=False).replace("<", "\\u003c")


def html_page(title: str, payload: dict, app_script: str, extra_head: str = "") -> str:
    """A complete page: `payload` as the DATA the scripts read, `app_script` (a file in static/) after common.js."""
    style = (STATIC / "style.css").read_text()
    scripts = "".join(f"<script>{(STATIC / name).read_text()}</script>" for name in ("common.js", app_script))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style>{extra_head}</head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f'<div id="app"></div>\n<script type="application/json" id="data">{script_json(payload)}</script>\n'
        f"{scripts}\n</body></html>\n"
    )


class ImageTable:
    """Data URIs of the images a page shows, each file embedded once however many samples show it.

    >>> table = ImageTable()
    >>> table.indices(["/no/such.png"]), table.uris
    ([0], [None])
    """

    def __init__(self, max_side: int = DEFAULT_IMAGE_SIDE):
        self.max_side = max_side
        self.uris: list[str | None] = []
        self._index: dict[str, int] = {}

    def indices(self, paths: list[str]) -> list[int]:
        """Indices into `uris` for these files (embedding those not seen yet)."""
        out = []
        for path in paths:
            key = os.path.abspath(path)
            if key not in self._index:
                self._index[key] = len(self.uris)
                self.uris.append(embedded_image(path, self.max_side))
            out.append(self._index[key])
        return out


def embedded_image(path: str | os.PathLike, max_side: int = DEFAULT_IMAGE_SIDE) -> str | None:
    """A data URI of the image, its long side at most `max_side` (JPEG, or PNG for small images); None with a
    logged warning when the file is missing or unreadable, so the page shows "image missing" there."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if max(image.size) <= max_side and image.format == "PNG":
                return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
            image = image.convert("L" if image.mode in ("L", "I", "I;16", "F") else "RGB")
            image.thumbnail((max_side, max_side))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError) as error:
        logger.warning("report: image %s not embedded (%s)", path, error)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
