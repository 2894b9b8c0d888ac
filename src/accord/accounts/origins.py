"""The web origins a pixel accepts browsers from: parsing what a person types, matching an Origin.

An entry is `scheme://host[:port]` (`https://shop.example`), or with a leading `*.` on the
host for every subdomain (`https://*.shop.example`, not the bare domain itself). No
entries, or `*`, means any origin: write keys are public, so that is the default. Origins
are compared lower-cased without the scheme's default port, as browsers send them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from accord.core.errors import FieldProblem, InvalidInput

ANY = "*"
MAX_ORIGINS = 50
MAX_ORIGIN_LENGTH = 253
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<wild>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def normalise(origin: str) -> str | None:
    """The origin in its compared form, or None when it is not `scheme://host[:port]`."""
    text = origin.strip().lower().rstrip("/")
    match = _ORIGIN.fullmatch(text)
    if match is None or len(text) > MAX_ORIGIN_LENGTH:
        return None
    scheme, port = match["scheme"], match["port"]
    if port is not None and not 0 < int(port) < 65536:
        return None
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{match['wild'] or ''}{match['host']}{shown_port}"


def parse_origins(
    entries: Iterable[str], *, field: str = "allowed_origins"
) -> tuple[str, ...] | None:
    """The allowed origins from a person's entries (a list, or lines of a text box); None
    means any origin. Every bad entry is reported with its position."""
    given = [e.strip() for e in entries if e.strip()]
    if not given or ANY in given:
        if len(given) > 1:
            raise InvalidInput([FieldProblem(field, '"*" allows any origin; list nothing else')])
        return None
    if len(given) > MAX_ORIGINS:
        raise InvalidInput([FieldProblem(field, f"at most {MAX_ORIGINS} origins")])
    problems: list[FieldProblem] = []
    out: list[str] = []
    for index, entry in enumerate(given):
        origin = normalise(entry)
        if origin is None:
            problems.append(
                FieldProblem(
                    f"{field}.{index}",
                    f"{entry[:80]!r} is not an origin like https://shop.example "
                    "(scheme and host, optional port and *. prefix, no path)",
                )
            )
        elif origin not in out:
            out.append(origin)
    if problems:
        raise InvalidInput(problems)
    return tuple(out)


def stored(origins: tuple[str, ...] | None) -> str | None:
    """The column's text: one origin a line, NULL for any origin."""
    return "\n".join(origins) if origins else None


def loaded(text: str | None) -> tuple[str, ...] | None:
    return tuple(text.split("\n")) if text else None


def _matches(pattern: str, origin: str) -> bool:
    if pattern == origin:
        return True
    scheme, _, rest = pattern.partition("://*.")
    if not rest:
        return False
    prefix = f"{scheme}://"
    if not origin.startswith(prefix):
        return False
    host_port = origin[len(prefix) :]
    return host_port.endswith("." + rest) and len(host_port) > len(rest) + 1


def origin_allowed(allowed: tuple[str, ...] | None, origin: str | None) -> bool:
    """Whether a request with this `Origin` header may use a write key allowing `allowed`.

    A request without an Origin is not a browser's cross-origin call (server libraries,
    curl) and is not restricted: the origin list guards against other websites, not
    against holders of the write key.
    """
    if allowed is None or origin is None:
        return True
    compared = normalise(origin)
    return compared is not None and any(_matches(p, compared) for p in allowed)
