"""Proof of consent for one subject: every record, the exact texts shown, the chain's check."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape
from sqlalchemy import Connection

from accord.consent import config, ledger, service
from accord.core.clock import iso, utcnow

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Proof of consent: {{ proof.subject }}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; color: #111; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; border-bottom: 1px solid #ddd; padding: .3rem .5rem;
         vertical-align: top; }
th { width: 14rem; font-weight: 600; }
code { font-size: .85em; word-break: break-all; }
.granted { color: #0a6b2d; font-weight: 600; } .denied { color: #a11; font-weight: 600; }
.ok { background: #e8f5ec; padding: .5rem 1rem; }
.bad { background: #fdecea; padding: .5rem 1rem; }
blockquote { border-left: 3px solid #ccc; margin: .5rem 0; padding: .2rem 1rem; color: #333; }
</style>
</head>
<body>
<h1>Proof of consent</h1>
<p>Subject <code>{{ proof.subject }}</code> · business <code>{{ proof.business_id }}</code>
 · generated {{ proof.generated_at }}</p>
{% set chain = proof.chain %}
{% if chain.ok %}
<p class="ok">The ledger's hash chain was verified when this page was made:
 {{ chain.records }} records, last hash <code>{{ chain.head_hash }}</code>.</p>
{% else %}
<p class="bad">The ledger's hash chain FAILED verification at record
 {{ chain.first_bad_record.position }}: {{ chain.first_bad_record.reason }}.</p>
{% endif %}
<h2>Current choices</h2>
{% if proof.state %}
<table>
{% for key, granted in proof.state.purposes|dictsort %}
<tr><th>{{ key }}</th><td class="{{ 'granted' if granted else 'denied' }}">
{{ 'granted' if granted else 'refused' }}</td></tr>
{% endfor %}
</table>
{% else %}<p>No decision recorded.</p>{% endif %}
{% for item in proof.records %}
{% set r = item.record %}
<h2>Decision {{ loop.index }} · {{ r.recorded_at }}</h2>
<table>
<tr><th>Record</th><td><code>{{ r.id }}</code> (position {{ r.position }} in the chain)</td></tr>
<tr><th>Source</th><td>{{ r.source }}{% if r.imported %} · <strong>imported</strong> from
 {{ r.imported.from }}{% if r.imported.notice %}; the notice it names: {{ r.imported.notice }}
{% endif %}{% endif %}</td></tr>
{% if r.evidence %}<tr><th>Form evidence</th><td>form <code>{{ r.evidence.form_id }}</code>
 version {{ r.evidence.form_version }} · language {{ r.evidence.language }}
 · checkbox text: “{{ r.evidence.checkbox_text }}”
 {% if r.evidence.confirmation_message_id %}· double opt-in: confirmation message
 <code>{{ r.evidence.confirmation_message_id }}</code>, confirmed {{ r.evidence.confirmed_at }}
 {% endif %}</td></tr>{% endif %}
<tr><th>Regime</th><td>{{ r.regime }}
{% if r.country %} (country {{ r.country }}){% endif %}</td></tr>
<tr><th>Choices</th><td>
{% for key, granted in r.purposes|dictsort %}
<span class="{{ 'granted' if granted else 'denied' }}">{{ key }}: {{ 'yes' if granted else 'no' }}
</span>{% if not loop.last %}, {% endif %}
{% endfor %}</td></tr>
{% if r.vendors %}<tr><th>Vendors</th><td>
{% for key, granted in r.vendors|dictsort %}{{ key }}: {{ 'yes' if granted else 'no' }}
{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endif %}
<tr><th>Global Privacy Control</th><td>{{ 'sent' if r.gpc else 'not sent' }}</td></tr>
<tr><th>Notice</th><td>{% if r.notice_version %}version {{ r.notice_version }}, variant
 {{ r.variant }}, language {{ r.language }}{% else %}none ({{ r.language }}){% endif %}</td></tr>
<tr><th>Text hash</th><td><code>{{ r.text_hash or '—' }}</code>
{% if item.text_hash_matches is not none %} ·
 {{ 'matches the published text below' if item.text_hash_matches else 'DOES NOT MATCH' }}
{% endif %}</td></tr>
<tr><th>Network</th><td>{{ r.ip or '—' }} · {{ r.device or '—' }} ·
 <code>{{ r.user_agent or '—' }}</code></td></tr>
{% if r.tc_string %}<tr><th>TC string</th><td><code>{{ r.tc_string }}</code></td></tr>{% endif %}
<tr><th>Hash</th><td><code>{{ r.hash }}</code><br>previous <code>{{ r.prev_hash }}</code></td></tr>
</table>
{% if item.shown %}
<details><summary>Text shown</summary>
<blockquote>
<p><strong>{{ item.shown.texts.title }}</strong></p>
<p>{{ item.shown.texts.description }}</p>
<ul>{% for p in item.shown.purposes %}<li><strong>{{ p.name }}</strong>: {{ p.description }}
</li>{% endfor %}</ul>
<p>Buttons: {{ item.shown.texts.accept_all }} · {{ item.shown.texts.reject_all }} ·
 {{ item.shown.texts.customise }}</p>
</blockquote></details>
{% endif %}
{% endfor %}
<p>Each record's hash is SHA-256 over the canonical JSON of its fields and the previous
record's hash; see docs/consent.md, "Verifying the ledger".</p>
</body>
</html>
"""

_environment = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def build(conn: Connection, *, business_id: str, subject: str) -> dict[str, Any]:
    """A subject's proof as JSON: records with the texts they were given, and the check."""
    records = service.history(conn, business_id=business_id, subject=subject)
    items = []
    for record in records:
        shown = None
        matches = None
        if record["notice_id"]:
            notice = config.notice_by_id(
                conn, business_id=business_id, notice_id=record["notice_id"]
            )
            if notice is not None:
                language = record["language"]
                if language not in notice["texts"]:
                    language = notice["default_language"]
                texts = notice["texts"][language]
                purposes = [
                    config.purpose_text(p, language, notice["default_language"])
                    for p in notice["purposes"]
                ]
                shown = {"language": language, "texts": texts, "purposes": purposes}
                if record["text_hash"]:
                    matches = config.text_hash(texts, purposes) == record["text_hash"]
        items.append({"record": record, "shown": shown, "text_hash_matches": matches})
    state = service.subject_state(conn, business_id=business_id, subject=subject)
    return {
        "subject": subject,
        "business_id": business_id,
        "generated_at": iso(utcnow()),
        "chain": ledger.verify(conn, business_id=business_id).to_json(),
        "state": state.to_json() if state is not None else None,
        "records": items,
    }


def render_html(proof: dict[str, Any]) -> str:
    """The proof as one self-contained HTML page (no scripts, no external resources)."""
    return _environment.from_string(_TEMPLATE).render(proof=proof)
