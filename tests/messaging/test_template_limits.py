"""Item 2 of issue 19: templates are bounded in size, time and arithmetic."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.errors import InvalidInput
from accord.messaging import templates
from accord.messaging.templates import compile_template, personalisation

COSTLY = [
    "{{ (3**10000000) % 7 }}",
    "{{ 10**5000 }}",
    "{% for i in range(10**6) %}{% endfor %}",
    "{{ 'x' | center(999999999) }}",
    "{{ 'x' | indent(999999999) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%(a)999999999d' | format(a=1) }}",
    "{{ '{:999999999}'.format(1) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ 'ab' * 99999999 }}",
    "{{ 9" + "9" * 5000 + " }}",
    "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(1) }}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
]


@pytest.fixture(autouse=True)
def _short_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "TIME_LIMIT", 0.3)


@pytest.mark.parametrize("source", COSTLY)
def test_item_2_template_dos_is_refused_quickly(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as refused:
        compile_template(subject="Hi", html=source, text=source).render(
            personalisation({}, email="ada@example.com")
        )
    assert time.monotonic() - started < 1.5
    assert refused.value.problems[0].field in ("html", "text", "template")


def test_item_2_template_dos_leaves_ordinary_arithmetic_and_padding_alone() -> None:
    source = "{{ 2**10 }} {{ '%5d' % 3 }} {{ 'ab' * 2 }} {{ 'x' | center(5) }} {{ 7 % 3 }}"
    rendered = compile_template(subject="{{ 3 * 4 }}", html="<p>x</p>", text=source).render({})
    assert rendered.subject == "12"
    assert rendered.text == "1024     3 abab   x   1"


def test_item_2_template_dos_source_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "MAX_SOURCE", 100)
    with pytest.raises(InvalidInput) as refused:
        compile_template(subject="Hi", html="<p>" + "x" * 200 + "</p>", text="")
    assert refused.value.problems[0].field == "html"


def test_item_2_template_dos_preview_page_answers_400(client: TestClient, keys: Bootstrap) -> None:
    auth = {"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"}
    for source in ("{{ (3**10000000) % 7 }}", "{{ 10**5000 }}", "{{ range(10**6) | list }}"):
        started = time.monotonic()
        response = client.post(
            "/email/templates",
            data={"name": "t", "subject": "Hi", "html": source, "text": "", "action": "preview"},
            headers=auth,
        )
        assert response.status_code == 400, response.text
        assert "cannot render" in response.text
        assert time.monotonic() - started < 2


def test_item_2_template_dos_api_answers_400_naming_the_part(
    client: TestClient, keys: Bootstrap
) -> None:
    auth = {"Authorization": f"Bearer {keys.admin_token}"}
    huge = "{{ 9" + "9" * 5000 + " }}"
    response = client.post(
        "/api/email/templates", json={"name": "t", "subject": "Hi", "html": huge}, headers=auth
    )
    assert response.status_code == 400, response.text
    assert "html" in response.text
    made = client.post(
        "/api/email/templates",
        json={"name": "t", "subject": "Hi", "html": "<p>x</p>"},
        headers=auth,
    )
    assert made.status_code == 201
    patched = client.patch(
        f"/api/email/templates/{made.json()['id']}", json={"text": huge}, headers=auth
    )
    assert patched.status_code == 400 and "text" in patched.text
