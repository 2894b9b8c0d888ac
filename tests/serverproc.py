"""Run `accord serve` as a real subprocess on a free port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from tests.live_app import free_port

START_TIMEOUT = 60.0


def server_env(
    *, data_dir: Path, database_url: str, lake_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a server: this one without any ACCORD_* variable, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(
        {
            "ACCORD_DATA_DIR": str(data_dir),
            "ACCORD_DATABASE_URL": database_url,
            "ACCORD_LAKE_URL": lake_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class PortTaken(Exception):
    pass


class ServerProcess:
    """`python -m accord.cli serve` in its own process; the pid is the server itself."""

    def __init__(
        self, env: Mapping[str, str], *, log_path: Path, worker: bool = True, port: int = 0
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.worker = worker
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        for _attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                # Another process took the port between free_port() and bind().
                self.port = free_port()
        return self._start(timeout)

    def _start(self, timeout: float) -> ServerProcess:
        command = [sys.executable, "-m", "accord.cli", "serve", "--port", str(self.port)]
        if not self.worker:
            command.append("--no-worker")
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n=== {' '.join(command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    if "address already in use" in self._log_since_start().lower():
                        raise PortTaken(self.port)
                    raise RuntimeError(f"accord serve exited with {code}:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"accord serve not healthy after {timeout}s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def health(self) -> dict[str, object]:
        response = httpx.get(f"{self.base_url}/healthz", timeout=10.0)
        response.raise_for_status()
        data: dict[str, object] = response.json()
        return data

    def wait_drained(self, timeout: float) -> None:
        """Poll /healthz until no event is pending; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        pending: object = None
        while time.monotonic() < deadline:
            pending = self.health()["pending_events"]
            if pending == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{pending} events still pending after {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server process (no clean shutdown) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down cleanly (SIGTERM), falling back to SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _log_since_start(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
