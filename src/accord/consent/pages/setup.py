"""Consent pages: setup."""

from __future__ import annotations

from fastapi import APIRouter

from accord.web.ui import NavEntry

router = APIRouter(include_in_schema=False)
nav: list[NavEntry] = []
