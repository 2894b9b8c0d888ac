"""A bounded schemathesis run over Accord's /openapi.json (issue 19, item 11).

Every operation gets `examples` generated cases (plus the schema's own examples), sent
in-process with the admin token (`/api/...`) or the write key (`/v1/...`). A case fails
when the answer is a 5xx or does not match the response schema the operation declares.
Failures are collected, not raised, so one run lists every broken operation. Used by
tests/web/test_fuzz.py (few examples, in `make test`) and bench/fuzz.py (a longer run).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance


@dataclass(frozen=True)
class Failure:
    operation: str
    status: int
    reason: str
    request: str


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{self.operations} operations, {self.cases} cases, {self.seconds:.1f} s"]
        slowest = sorted(self.timings.items(), key=lambda item: -item[1])[:5]
        lines.append("slowest: " + ", ".join(f"{name} {took:.1f} s" for name, took in slowest))
        seen: set[tuple[str, str]] = set()
        for failure in self.failures:
            if (failure.operation, failure.reason) in seen:
                continue
            seen.add((failure.operation, failure.reason))
            lines.append(
                f"{failure.operation}: {failure.status} {failure.reason}\n  {failure.request}"
            )
        return "\n".join(lines)


def fuzz(
    app: FastAPI,
    *,
    admin_token: str,
    write_key: str,
    examples: int,
    run_seed: int = 19,
    only: Callable[[str, str], bool] = lambda method, path: True,
) -> FuzzReport:
    """Run every operation of `app`'s schema; the report lists each failing case."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = FuzzReport()
    write = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    started = time.perf_counter()
    with asgi.get_client(app) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            method, path = operation.method.upper(), operation.path
            if not only(method, path):
                continue
            report.operations += 1
            token = write if path.startswith("/v1/") else f"Bearer {admin_token}"
            began = time.perf_counter()
            _run_operation(operation, client, token, examples, run_seed, report)
            report.timings[f"{method} {path}"] = time.perf_counter() - began
    report.seconds = time.perf_counter() - started
    return report


def _run_operation(
    operation: Any, client: Any, token: str, examples: int, run_seed: int, report: FuzzReport
) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @seed(run_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        report.cases += 1
        headers = {"Authorization": token, "Accept": "application/json"}
        try:
            response = case.call(session=client, headers=headers)
        except Exception as exc:  # the app raised through the transport: a server error
            report.failures.append(
                Failure(name, 500, f"{type(exc).__name__}: {exc}"[:300], case.as_curl_command())
            )
            return
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except (AssertionError, FailureGroup, InvalidSchema) as exc:
            # InvalidSchema: the operation's declared response schema cannot be read.
            reason = " ".join(str(exc).split())[:300]
            report.failures.append(
                Failure(name, response.status_code, reason, case.as_curl_command(headers))
            )

    run()
