"""``GET /api/v1/openapi.json`` and ``GET /api/v1/ui`` (plus the UI's local assets)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

import falcon
import swagger_ui_bundle

from widgetsvc.auth.middleware import NONE
from widgetsvc.docs.openapi import build_document

ASSETS_DIR = Path(swagger_ui_bundle.swagger_ui_path)
_PAGE = (Path(__file__).resolve().parent / "ui.html").read_text(encoding="utf-8")
# The page's one inline script, allowed by its hash in the page's Content-Security-Policy.
UI_SCRIPT_HASHES = tuple(
    "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    for script in re.findall(r"<script>(.*?)</script>", _PAGE, flags=re.S)
)


class OpenAPIResource:
    auth = {"GET": NONE}

    def __init__(self, routes: Mapping[str, object], public_url: str = "") -> None:
        """``routes``: the app's resources by path under the API prefix (this one included),
        whose ``auth`` declarations the document's security sections are read from;
        ``public_url``: PUBLIC_URL, the document's server."""
        self._body = json.dumps(build_document({**routes, "/openapi.json": self},
                                               public_url)).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body


class SwaggerUIResource:
    auth = {"GET": NONE}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = _PAGE
