"""A journey loop in its own process, for the crash test: `python -m tests.journeys.loop_main
DATABASE_URL SENT_LOG`. Every message it sends is appended to SENT_LOG with fsync."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import timedelta

from accord.journeys import worker
from accord.journeys.runner import Runner
from accord.messaging.channels import Delivery, Outgoing
from accord.store.db import open_store
from tests.journeys.helpers import everyone


class LoggingSms:
    name = "sms"

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def send(self, message: Outgoing) -> Delivery:
        time.sleep(0.002)
        os.write(self.fd, f"{message.id}\n".encode())
        os.fsync(self.fd)
        return Delivery("sent", provider_id=message.id)


def main() -> None:
    url, log_path = sys.argv[1], sys.argv[2]
    store = open_store(url)
    runner = Runner(everyone())
    print("ready", flush=True)
    worker.run(
        store,
        runner,
        {"sms": LoggingSms(log_path)},
        stop=threading.Event(),
        poll=0.05,
        lease=timedelta(seconds=1),
    )


if __name__ == "__main__":
    main()
