"""Headers for files a response hands over: one safe `Content-Disposition` for every export."""

from __future__ import annotations

import re
from urllib.parse import quote

# What a quoted filename may hold as it is: printable ASCII without `"` and `\`.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def attachment(filename: str) -> dict[str, str]:
    """`Content-Disposition: attachment` naming `filename`, whatever it holds (RFC 6266).

    Any text may reach a filename (a purpose, a key); HTTP headers are Latin-1 and end at
    CR/LF. The plain `filename` keeps printable ASCII with `_` for the rest; `filename*`
    carries the exact name percent-encoded as UTF-8 for clients that read it.
    """
    fallback = _UNSAFE.sub("_", filename)
    exact = quote(filename, safe="")
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"}
