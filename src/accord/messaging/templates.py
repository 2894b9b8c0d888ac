"""Email templates: sandboxed Jinja2, CSS inlined into the HTML, stored per business."""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import css_inline
from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Connection, or_, select, update

from accord.accounts.models import Actor
from accord.accounts.service import audit
from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.messaging.models import TemplateIn, TemplatePatch, email_campaigns, email_templates
from accord.recommend.serving import for_contact

# Campaigns in these states have sent with their templates, which then stay as they were.
SENT_STATUSES = ("sending", "testing", "sent")

# Bounds on what one template may cost (docs/security.md, "Template denial of service").
MAX_SOURCE = 500_000  # characters in one part (subject, html or text)
MAX_OUTPUT = 2_000_000  # characters one part may render to
MAX_INT_BITS = 4096  # integers a template computes stay below 2**4096
MAX_WIDTH = 10_000  # padding, centring and format widths
TIME_LIMIT = 2.0  # seconds to compile, or to render one email

_TEMPLATE_FILE = "<template>"
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*)(?:\.(\d*))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)")


class TemplateTooCostly(TemplateError):
    """The template asked for more work or memory than one email may take."""


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _check_widths(text: str, pattern: re.Pattern[str]) -> None:
    for match in pattern.finditer(text):
        for group in match.groups():
            if group and (len(group) > 6 or int(group) > MAX_WIDTH):
                raise TemplateTooCostly(f"format widths stop at {MAX_WIDTH}")


def _power(left: Any, right: Any) -> Any:
    numbers = isinstance(left, int) and isinstance(right, int)
    if numbers and abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise TemplateTooCostly(f"numbers stop at 2**{MAX_INT_BITS}")
    return left**right


def _times(left: Any, right: Any) -> Any:
    if _bits(left) + _bits(right) > MAX_INT_BITS:
        raise TemplateTooCostly(f"numbers stop at 2**{MAX_INT_BITS}")
    for seq, count in ((left, right), (right, left)):
        repeats = isinstance(seq, str | list | tuple) and isinstance(count, int)
        if repeats and len(seq) * count > MAX_OUTPUT:
            raise TemplateTooCostly(f"repeated text stops at {MAX_OUTPUT} characters")
    return left * right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_widths(left, _PERCENT_WIDTH)
    return left % right


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [*args[1:], *kwargs.values()]
        if name == "format" and args and isinstance(args[0], str):
            _check_widths(args[0], _PERCENT_WIDTH)
        if any(isinstance(v, int) and abs(v) > MAX_WIDTH for v in values):
            raise TemplateTooCostly(f"the {name} filter takes sizes up to {MAX_WIDTH}")
        return original(*args, **kwargs)

    # Jinja passes the environment or context to filters marked for it; keep the marks.
    bounded.__dict__.update(original.__dict__)
    return bounded


class BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox, with no arithmetic on huge numbers and no huge padding.

    Intercepted operators are also never folded at compile time, so `{{ 3**10000000 }}`
    costs nothing to compile and is refused when rendered.
    """

    intercepted_binops = frozenset({"**", "*", "%"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.binop_table = {**self.binop_table, "**": _power, "*": _times, "%": _modulo}
        for name in ("center", "indent", "format", "slice", "batch", "wordwrap", "truncate"):
            self.filters[name] = _bounded_filter(name, self.filters[name])

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_deadline()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        sizes = (*args, *kwargs.values())
        too_wide = any(isinstance(v, int) and v > MAX_WIDTH for v in sizes)
        if isinstance(owner, str) and name in _WIDTH_METHODS and too_wide:
            raise TemplateTooCostly(f"widths stop at {MAX_WIDTH}")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _check_widths(owner, _BRACE_WIDTH)
        return super().wrap_str_format(value)


# A missing trait renders as nothing (or its `default(...)`), never as an error,
# because profiles rarely hold every trait a marketer writes into a template.
_HTML_ENV = BoundedEnvironment(autoescape=True, undefined=ChainableUndefined)
_TEXT_ENV = BoundedEnvironment(autoescape=False, undefined=ChainableUndefined)
_INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)
# Journeys want a missing trait to stop a message rather than leave a blank.
_STRICT_HTML_ENV = BoundedEnvironment(autoescape=True, undefined=StrictUndefined)
_STRICT_TEXT_ENV = BoundedEnvironment(autoescape=False, undefined=StrictUndefined)

_deadline: dict[int, float] = {}


def _check_deadline() -> None:
    ends = _deadline.get(_thread_id())
    if ends is not None and time.monotonic() > ends:
        raise TemplateTooCostly(f"took longer than {TIME_LIMIT:g} seconds")


def _thread_id() -> int:
    return threading.get_ident()


@contextmanager
def _time_limit() -> Iterator[None]:
    """Stop template code (loops included) that runs past `TIME_LIMIT`, in this thread.

    A trace function sees each line the compiled template runs, and only those: other
    frames are not traced, so the cost stays with templates.
    """
    key = _thread_id()
    _deadline[key] = time.monotonic() + TIME_LIMIT

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            _check_deadline()
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return on_line if frame.f_code.co_filename == _TEMPLATE_FILE else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        yield
    finally:
        sys.settrace(previous)
        _deadline.pop(key, None)


def _render_part(template: Template, context: Mapping[str, Any]) -> str:
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TemplateTooCostly(f"renders to more than {MAX_OUTPUT} characters")
        chunks.append(chunk)
    return "".join(chunks)


# Errors a template can raise beyond Jinja's own: huge numbers printed or ranged over,
# runaway recursion, memory. They name the template at fault, never a 500.
_COST_ERRORS = (TemplateError, OverflowError, ValueError, MemoryError, RecursionError)


def render_text(source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    """One template string (a journey message), compiled and rendered within the bounds
    of every template; a missing name is an error. Raises `TemplateError`."""
    if len(source) > MAX_SOURCE:
        raise TemplateTooCostly(f"template is over {MAX_SOURCE} characters")
    environment = _STRICT_HTML_ENV if html else _STRICT_TEXT_ENV
    try:
        with _time_limit():
            return _render_part(environment.from_string(source), context)
    except (OverflowError, ValueError, MemoryError, RecursionError) as exc:
        raise TemplateTooCostly(str(exc)) from exc


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Template
    html: Template
    text: Template

    def render(self, context: Mapping[str, Any]) -> RenderedEmail:
        """Render all three parts, within the time and size bounds (else `InvalidInput`)."""
        try:
            with _time_limit():
                subject = " ".join(_render_part(self.subject, context).split())
                html = _INLINER.inline(_render_part(self.html, context))
                text = _render_part(self.text, context)
        except _COST_ERRORS as exc:  # the sandbox refused something, or a filter failed
            raise InvalidInput([FieldProblem("template", f"cannot render: {exc}")]) from exc
        return RenderedEmail(subject=subject, html=html, text=text)

    def with_subject(self, subject: str) -> CompiledTemplate:
        """This template with another subject line (an A/B variant's), compiled alike."""
        return CompiledTemplate(
            subject=compile_template(subject=subject, html="", text="").subject,
            html=self.html,
            text=self.text,
        )


def compile_template(*, subject: str, html: str, text: str) -> CompiledTemplate:
    """Parse once per campaign; errors name the part of the template at fault.

    Blocking and CPU-bound (bounded by `MAX_SOURCE` and `TIME_LIMIT`): call it from a
    worker thread, never in the event loop, and before opening a write transaction.
    """
    problems: list[FieldProblem] = []
    compiled: dict[str, Template] = {}
    for name, source, env in (
        ("subject", subject, _TEXT_ENV),
        ("html", html, _HTML_ENV),
        ("text", text, _TEXT_ENV),
    ):
        if len(source) > MAX_SOURCE:
            problems.append(FieldProblem(name, f"template is over {MAX_SOURCE} characters"))
            continue
        try:
            with _time_limit():
                compiled[name] = env.from_string(source)
        except _COST_ERRORS as exc:
            problems.append(FieldProblem(name, f"template error: {exc}"))
    if problems:
        raise InvalidInput(problems)
    return CompiledTemplate(**compiled)


@dataclass(frozen=True)
class CheckedTemplate:
    """A template the sandbox has parsed: the only kind the store takes.

    Checking costs CPU, so it happens before the write transaction opens
    (`check_template`), never inside it.
    """

    data: TemplateIn


def check_template(data: TemplateIn) -> CheckedTemplate:
    compile_template(subject=data.subject, html=data.html, text=data.text)
    return CheckedTemplate(data)


Recommender = Callable[..., list[dict[str, Any]]]


def personalisation(
    traits: Mapping[str, Any], *, email: str, recommendations: Recommender | None = None
) -> dict[str, Any]:
    """The names templates see: `contact` (profile traits), `email` and, when sending,
    `recommendations(contact, n)` (products for the contact, see `recommender`)."""
    contact = {str(k): v for k, v in traits.items()}
    contact.setdefault("email", email)
    names: dict[str, Any] = {"contact": contact, "email": email}
    if recommendations is not None:
        names["recommendations"] = recommendations
    return names


def _count(n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TemplateError("recommendations(contact, n): n must be a whole number")
    return n


def listed(items: list[dict[str, Any]]) -> Recommender:
    """`recommendations(contact, n)` over a list read beforehand (the first n of it)."""

    def recommendations(contact: Any = None, n: Any = 3) -> list[dict[str, Any]]:
        return items[: max(0, _count(n))]

    return recommendations


def recommender(conn: Connection, *, business_id: str) -> Recommender:
    """`recommendations(contact, n=3)` for templates: up to n products (name, url, image,
    price, …) for the contact's profile; popular ones without their `preferences` consent."""

    def recommendations(contact: Any = None, n: Any = 3) -> list[dict[str, Any]]:
        found = contact if isinstance(contact, Mapping) else {}
        return for_contact(conn, business_id=business_id, contact=found, limit=_count(n))

    return recommendations


def create_template(conn: Connection, *, business_id: str, checked: CheckedTemplate) -> str:
    data = checked.data
    template_id = new_id("tpl")
    conn.execute(
        email_templates.insert().values(
            id=template_id, business_id=business_id, created_at=utcnow(), **data.model_dump()
        )
    )
    return template_id


def campaigns_sent_with(conn: Connection, *, business_id: str, template_id: str) -> list[str]:
    """Names of the campaigns that sent (or are sending) this template, as A or as B."""
    return list(
        conn.execute(
            select(email_campaigns.c.name)
            .where(
                email_campaigns.c.business_id == business_id,
                email_campaigns.c.status.in_(SENT_STATUSES),
                or_(
                    email_campaigns.c.template_id == template_id,
                    email_campaigns.c.ab_test.contains(f'"{template_id}"'),
                ),
            )
            .order_by(email_campaigns.c.created_at)
        ).scalars()
    )


def update_template(
    conn: Connection,
    *,
    business_id: str,
    template_id: str,
    checked: CheckedTemplate,
    actor: Actor,
    ip: str | None,
) -> None:
    """Change a template in place, checked by the sandbox beforehand (`check_template`).

    Draft and scheduled campaigns then send the new version. A template a campaign has
    sent with is refused (`Conflict`): what was sent stays on record; save a new
    template instead.
    """
    row = get_template(conn, business_id=business_id, template_id=template_id)
    sent = campaigns_sent_with(conn, business_id=business_id, template_id=template_id)
    if sent:
        raise Conflict(
            f"template {template_id} was sent by {', '.join(sent)}; "
            "save the changes as a new template"
        )
    after = checked.data.model_dump()
    before = {k: getattr(row, k) for k in after}
    changed = {k for k in after if after[k] != before[k]}
    if not changed:
        return
    conn.execute(
        update(email_templates)
        .where(email_templates.c.id == template_id, email_templates.c.business_id == business_id)
        .values(**after)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="email_template.update",
        asset=("email_template", template_id),
        before={k: before[k] for k in sorted(changed)},
        after={k: after[k] for k in sorted(changed)},
        ip=ip,
    )


def patched(row: Any, patch: TemplatePatch) -> TemplateIn:
    """The stored template (`get_template`'s row) with the parts `patch` sets over it."""
    stored = {k: getattr(row, k) for k in TemplateIn.model_fields}
    given = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    return TemplateIn(**{**stored, **given})


def get_template(conn: Connection, *, business_id: str, template_id: str) -> Any:
    """The stored template (its row), of this business only."""
    row = conn.execute(
        select(email_templates).where(
            email_templates.c.id == template_id, email_templates.c.business_id == business_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"template {template_id}")
    return row


def load_template(conn: Connection, *, business_id: str, template_id: str) -> CompiledTemplate:
    row = get_template(conn, business_id=business_id, template_id=template_id)
    return compile_template(subject=row.subject, html=row.html, text=row.text)


def list_templates(conn: Connection, *, business_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(email_templates)
            .where(email_templates.c.business_id == business_id)
            .order_by(email_templates.c.created_at.desc())
        ).all()
    )
