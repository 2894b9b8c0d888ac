"""Serves the consent banner to websites: /cmp.js (styles inlined) and default translations."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accord.core.errors import NotFound

router = APIRouter(tags=["consent banner"])

CSS_PLACEHOLDER = "'/*@accord-css*/'"
# The script changes with each release; an hour of caching plus ETag revalidation lets a
# fix reach every site within the hour without a cache-busting URL.
CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?")


@dataclass(frozen=True)
class Asset:
    """One served file: its bytes, their gzip form and a strong ETag."""

    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


def static_text(name: str) -> str:
    return resources.files("accord.web").joinpath("static", name).read_text(encoding="utf-8")


def make_asset(body: bytes, media_type: str) -> Asset:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    gzipped = gzip.compress(body, 9, mtime=0)
    return Asset(body=body, gzipped=gzipped, etag=etag, media_type=media_type)


def compact_css(css: str) -> str:
    """Comments and layout whitespace out; the rules themselves are already written tight."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return "".join(line.strip() for line in css.splitlines())


def build_script() -> str:
    """cmp.js with cmp.css inlined, so one request and one nonce-bearing <style> suffice."""
    script = static_text("cmp.js")
    if CSS_PLACEHOLDER not in script:
        raise RuntimeError("cmp.js lost its CSS placeholder")
    return script.replace(CSS_PLACEHOLDER, json.dumps(compact_css(static_text("cmp.css"))))


@cache
def script_asset() -> Asset:
    return make_asset(build_script().encode(), "text/javascript; charset=utf-8")


def translation_languages() -> list[str]:
    folder = resources.files("accord.web").joinpath("static", "cmp")
    names = (p.name for p in folder.iterdir())
    return sorted(n.removesuffix(".json") for n in names if n.endswith(".json"))


@cache
def translation_asset(language: str) -> Asset:
    if not _LANGUAGE.fullmatch(language) or language not in translation_languages():
        raise NotFound(f"no default banner texts for language {language!r}")
    texts = json.loads(static_text(f"cmp/{language}.json"))
    body = json.dumps(texts, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return make_asset(body, "application/json")


def default_texts(language: str) -> dict[str, str]:
    """The shipped banner texts of one language (for seeding notices)."""
    texts: dict[str, str] = json.loads(translation_asset(language).body)
    return texts


def serve_asset(request: Request, asset: Asset) -> Response:
    headers = {
        "ETag": asset.etag,
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, headers=headers, media_type=asset.media_type)
    return Response(asset.body, headers=headers, media_type=asset.media_type)


@router.get("/cmp.js", summary="The consent banner script for websites (docs/cmp.md)")
@router.head("/cmp.js", include_in_schema=False)
async def cmp_script(request: Request) -> Response:
    return serve_asset(request, script_asset())


@router.get("/cmp/i18n/{language}.json", summary="Default banner texts of one language")
@router.head("/cmp/i18n/{language}.json", include_in_schema=False)
async def cmp_translation(language: str, request: Request) -> Response:
    return serve_asset(request, translation_asset(language.lower()))
