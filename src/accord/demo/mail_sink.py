"""The demo's mail transport: a local SMTP server that accepts every message and keeps none.

Campaigns in the demo go through Accord's real sending path (consent and suppression
checks, rendering, tracking links, SMTP); this server stands where a mail server would, so
nothing is delivered anywhere and no address of the demo's made-up people is ever mailed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from accord.messaging.smtp import SmtpConfig

HOST = "127.0.0.1"


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def say(line: str) -> None:
        writer.write(f"{line}\r\n".encode())
        await writer.drain()

    await say("220 accord-demo discarding SMTP server")
    try:
        while line := await reader.readline():
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                await say("250-accord-demo")
                await say("250 8BITMIME")
            elif verb == "DATA":
                await say("354 end with <CRLF>.<CRLF>")
                while (await reader.readline()) not in (b".\r\n", b".\n", b""):
                    pass
                await say("250 accepted and discarded")
            elif verb == "QUIT":
                await say("221 bye")
                break
            elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                await say("250 OK")
            else:
                await say("502 not implemented")
    finally:
        writer.close()


@asynccontextmanager
async def discarding_smtp(rate_per_second: float = 0.0) -> AsyncIterator[SmtpConfig]:
    """An SMTP server on a free local port while the block runs, as the config to send to."""
    server = await asyncio.start_server(_session, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpConfig(host=HOST, port=port, rate_per_second=rate_per_second, concurrency=4)
    finally:
        server.close()
        await server.wait_closed()
