"""Links that businesses configure and visitors follow (policy pages, privacy pages, logos).

Only web addresses are kept: `https://…`, `http://…`, or a path on the same site
(`/privacy`). A `javascript:`, `data:` or `vbscript:` URL — or any other scheme — would run
or show something of the configurer's choosing in the visitor's browser, so it is refused
when saved, whatever the browser-side code does later.
"""

from __future__ import annotations

from urllib.parse import urlsplit

WEB_SCHEMES = frozenset({"http", "https"})
REFUSED = "use an http(s) address or a path on this site (such as /privacy)"


def link_problem(url: str | None) -> str | None:
    """Why `url` may not be saved as a link, or None when it may (or is empty)."""
    if url is None or not url.strip():
        return None
    # Browsers drop ASCII whitespace and control characters inside a scheme
    # ("java\tscript:"), so those are refused outright.
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url.strip()):
        return "must not contain spaces or control characters"
    text = url.strip()
    if text.startswith("/") and not text.startswith("//"):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return REFUSED
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.netloc:
        return REFUSED
    return None
