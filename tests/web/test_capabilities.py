"""Every capability of the API has a page in the admin UI, or a stated reason why not.

The list below names, for each operation of the OpenAPI document, the page that offers the
same capability. An operation added without a line here fails the test, and so does a line
naming a page that does not exist. Operations that stay API-only say why: they are called
by websites, apps, mail providers or ad servers, not by people in the admin UI.
docs/console.md prints the same table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.testclient import TestClient

from tests.web.test_route_walk import _api_routes


@dataclass(frozen=True)
class ApiOnly:
    reason: str


COLLECTION = ApiOnly(
    "called by sites, apps and servers with the write key (accord.js, Segment and RudderStack "
    "libraries); files come in through the Imports page"
)
BANNER = ApiOnly("called by the consent banner (cmp.js) on the business's own sites")
AD_SERVER = ApiOnly("called by the ad server during an experiment, with the write key")
PROVIDER = ApiOnly("called by the mail provider or its webhooks, not by a person")
VISITOR = ApiOnly("the public side seen by visitors (landing pages, links in emails)")
CHECKOUT = ApiOnly("called by the shop's checkout when a customer uses a coupon")
PROBE = ApiOnly("a liveness probe for load balancers and monitoring")

CAPABILITIES: dict[str, str | ApiOnly] = {
    # Collection
    "POST /v1/track": COLLECTION,
    "POST /v1/identify": COLLECTION,
    "POST /v1/page": COLLECTION,
    "POST /v1/screen": COLLECTION,
    "POST /v1/group": COLLECTION,
    "POST /v1/alias": COLLECTION,
    "POST /v1/batch": COLLECTION,
    "GET /accord.js": ApiOnly(
        "the collection tag a business's sites load (the pixel page gives its snippet)"
    ),
    "GET /api/reports/volume": "/analytics/volume",
    "POST /api/analytics/funnels": "/analytics/funnels",
    "POST /api/analytics/funnels/people": "/analytics/funnels",
    "POST /api/analytics/paths": "/analytics/paths",
    "POST /api/analytics/retention": "/analytics/retention",
    "POST /api/analytics/attribution": "/analytics/attribution",
    "GET /api/analytics/spend": "/analytics/spend",
    "POST /api/analytics/spend": "/analytics/spend",
    "DELETE /api/analytics/spend/{entry_id}": "/analytics/spend",
    "GET /api/analytics/reports": "/analytics/dashboard",
    "POST /api/analytics/reports": "/analytics/attribution",
    "GET /api/analytics/reports/{report_id}": "/analytics/dashboard",
    "POST /api/analytics/reports/{report_id}/refresh": "/analytics/dashboard",
    "DELETE /api/analytics/reports/{report_id}": "/analytics/dashboard",
    # Profiles, identity and subject rights
    "GET /api/profiles": "/profiles",
    "GET /api/profiles/{profile_id}": "/profiles/{profile_id}",
    "DELETE /api/profiles/{profile_id}": "/profiles/{profile_id}/erase",
    "GET /api/profiles/{profile_id}/timeline": "/profiles/{profile_id}",
    "GET /api/profiles/{profile_id}/export": "/profiles/{profile_id}/export.json",
    "GET /api/profiles/{profile_id}/merges": "/profiles/{profile_id}",
    "GET /api/profiles/{profile_id}/edges": "/profiles/{profile_id}",
    "GET /api/profiles/{profile_id}/journeys": "/profiles/{profile_id}",
    "POST /api/identity/edges/{edge_id}/unmerge": "/profiles/{profile_id}/edges/{edge_id}/unmerge",
    "GET /api/identity/reviews": "/identity/reviews",
    "GET /api/identity/reviews/{review_id}/diff": "/identity/reviews",
    "POST /api/identity/reviews/{review_id}/accept": "/identity/reviews",
    "POST /api/identity/reviews/{review_id}/reject": "/identity/reviews",
    "GET /api/identity/rules": "/identity/rules",
    "PUT /api/identity/rules": "/identity/rules",
    "POST /api/identity/match": "/identity/rules",
    "GET /api/reach": "/profiles/{profile_id}",
    # Accounts
    "GET /api/accounts/business": "/business/settings",
    "PUT /api/accounts/business": "/business/settings",
    "GET /api/accounts/people": "/people",
    "PUT /api/accounts/people/{person_id}/role": "/people",
    "PUT /api/accounts/people/{person_id}/grants": "/people",
    "DELETE /api/accounts/people/{person_id}": "/people",
    "GET /api/accounts/invitations": "/people",
    "POST /api/accounts/invitations": "/people",
    "DELETE /api/accounts/invitations/{invitation_id}": "/people",
    "GET /api/accounts/assets": "/assets",
    "GET /api/accounts/assets/{asset_id}": "/assets",
    "POST /api/accounts/pixels": "/assets",
    "GET /api/accounts/pixels/{pixel_id}": "/assets/pixels/{pixel_id}",
    "PATCH /api/accounts/pixels/{pixel_id}": "/assets/pixels/{pixel_id}",
    "POST /api/accounts/properties": "/assets",
    "POST /api/accounts/social-accounts": "/assets",
    "POST /api/accounts/ad-accounts": "/assets",
    "POST /api/accounts/ad-accounts/{ad_account_id}/close": "/assets/ad-accounts/{ad_account_id}",
    "GET /api/accounts/ad-accounts/{ad_account_id}/campaigns": (
        "/assets/ad-accounts/{ad_account_id}"
    ),
    "POST /api/accounts/ad-accounts/{ad_account_id}/campaigns": (
        "/assets/ad-accounts/{ad_account_id}"
    ),
    "PATCH /api/accounts/ad-accounts/{ad_account_id}/campaigns/{campaign_id}": (
        "/assets/ad-accounts/{ad_account_id}/campaigns/{campaign_id}"
    ),
    "GET /api/accounts/tokens": "/tokens",
    "POST /api/accounts/tokens": "/tokens",
    "DELETE /api/accounts/tokens/{token_id}": "/tokens",
    "GET /api/accounts/partners": "/partners",
    "POST /api/accounts/partners": "/partners",
    "DELETE /api/accounts/partners/{share_id}": "/partners",
    "GET /api/accounts/security": "/security",
    "PUT /api/accounts/security/two-factor-policy": "/security",
    "GET /api/accounts/audit": "/audit",
    "GET /api/accounts/audit.csv": "/audit.csv",
    # Consent
    "GET /cmp.js": BANNER,
    "GET /cmp/i18n/{language}.json": BANNER,
    "GET /v1/consent/config": BANNER,
    "POST /v1/consent": BANNER,
    "GET /v1/consent/{subject}": BANNER,
    "GET /api/consent/properties": "/consent",
    "POST /api/consent/properties": "/consent",
    "PUT /api/consent/properties/{key}": "/consent/properties/{key}",
    "GET /api/consent/purposes": "/consent/purposes",
    "PUT /api/consent/purposes/{key}": "/consent/purposes/{key}",
    "GET /api/consent/vendors": "/consent/vendors",
    "PUT /api/consent/vendors/{key}": "/consent/vendors/{key}",
    "POST /api/consent/vendors/gvl": "/consent/vendors",
    "GET /api/consent/properties/{key}/notices": "/consent/properties/{key}",
    "POST /api/consent/properties/{key}/notices": "/consent/properties/{key}/texts",
    "GET /api/consent/geo-rules": "/consent/geo-rules",
    "PUT /api/consent/geo-rules/{region}": "/consent/geo-rules",
    "DELETE /api/consent/geo-rules/{region}": "/consent/geo-rules",
    "GET /api/consent/policy": "/consent/policy",
    "PUT /api/consent/policy": "/consent/policy",
    "GET /api/consent/verify": "/consent/ledger",
    "GET /api/consent/subjects/{subject}/proof": "/consent/proof",
    "GET /api/consent/export": "/consent/ledger",
    "GET /api/consent/analytics": "/consent/opt-in",
    "GET /api/consent/properties/{key}/abtest": "/consent/abtests",
    # Audiences and reach
    "GET /api/audiences": "/audiences",
    "POST /api/audiences": "/audiences/new",
    "POST /api/audiences/validate": "/audiences/new",
    "POST /api/audiences/preview": "/audiences/new",
    "POST /api/audiences/refresh": "/audiences",
    "GET /api/audiences/{audience}": "/audiences/{audience}",
    "DELETE /api/audiences/{audience}": "/audiences/{audience}",
    "POST /api/audiences/{audience}/refresh": "/audiences/{audience}",
    "GET /api/audiences/{audience}/sizes": "/audiences/{audience}",
    "GET /api/audiences/{audience}/members": "/audiences/{audience}",
    "GET /api/audiences/{audience}/changes": "/audiences/{audience}",
    "GET /api/audiences/{first}/overlap/{second}": "/audiences/{audience}",
    "GET /api/audiences/{audience}/export/{destination}": "/audiences/{audience}/export",
    "POST /api/audiences/{audience}/webhooks": "/audiences/{audience}",
    "GET /api/audiences/{audience}/webhooks": "/audiences/{audience}",
    "GET /api/audiences/{audience}/webhooks/dead-letters": "/audiences/{audience}",
    "POST /api/audiences/{audience}/webhooks/dead-letters/{dead_letter}/replay": (
        "/audiences/{audience}"
    ),
    "POST /api/audiences/{audience}/webhooks/dead-letters/{dead_letter}/discard": (
        "/audiences/{audience}"
    ),
    "GET /api/suppressions": "/suppressions",
    "POST /api/suppressions": "/suppressions",
    "DELETE /api/suppressions/{kind}/{value}": "/suppressions",
    # Email
    "POST /api/email/templates": "/email/templates/new",
    "PATCH /api/email/templates/{template_id}": "/email/templates/{template_id}",
    "POST /api/email/lists": "/email/lists",
    "POST /api/email/lists/{list_id}/members": "/email/lists/{list_id}",
    "POST /api/email/campaigns": "/email/campaigns",
    "PATCH /api/email/campaigns/{campaign_id}": "/email/campaigns/{campaign_id}",
    "POST /api/email/campaigns/{campaign_id}/send": "/email/campaigns/{campaign_id}",
    "POST /api/email/campaigns/{campaign_id}/test": "/email/campaigns/{campaign_id}",
    "GET /api/email/campaigns/{campaign_id}/kpis": "/email/campaigns/{campaign_id}",
    "GET /api/email/kpis": "/email/performance",
    "POST /api/email/bounces": PROVIDER,
    "GET /api/email/webhooks/{provider}": ApiOnly(
        "an address to paste into the mail provider's settings; docs/email.md shows the call"
    ),
    "POST /e/webhooks/{provider}/{token}": PROVIDER,
    # Leads
    "POST /api/leads/forms": "/leads/forms/new",
    "PUT /api/leads/forms/{form_id}": "/leads/forms/{form_id}/edit",
    "GET /api/leads/forms/{form_id}/snippet": "/leads/forms/{form_id}",
    "GET /api/leads/leads/{lead_id}": "/leads/people/{lead_id}",
    "GET /api/leads/leads": "/leads/people",
    "PUT /api/leads/scoring": "/leads/scoring",
    "GET /api/leads/scoring": "/leads/scoring",
    "POST /api/leads/leads/{lead_id}/stage": "/leads/people/{lead_id}",
    "PUT /api/leads/spend": "/leads/funnel",
    "GET /api/leads/funnel": "/leads/funnel",
    "POST /api/leads/coupon-pools": "/leads/magnets",
    "POST /api/leads/coupons/{code}/redeem": CHECKOUT,
    "PUT /api/leads/magnets/{name}": "/leads/magnets",
    "POST /api/leads/imports/lead-ads": "/leads/import",
    "POST /api/leads/imports/csv": "/leads/import",
    "GET /l/{slug}": VISITOR,
    "POST /l/{slug}": VISITOR,
    "GET /l/confirm/{token}": VISITOR,
    "GET /l/download/{token}": VISITOR,
    # Experiments
    "POST /api/experiments": "/experiments/new",
    "GET /api/experiments": "/experiments",
    "POST /api/experiments/templates/cma": "/experiments/new",
    "POST /api/experiments/power": "/experiments/new",
    "GET /api/experiments/{key}": "/experiments/{key}",
    "PUT /api/experiments/{key}": "/experiments/new",
    "POST /api/experiments/{key}/start": "/experiments/{key}",
    "POST /api/experiments/{key}/stop": "/experiments/{key}",
    "GET /api/experiments/{key}/analysis": "/experiments/{key}",
    "GET /api/experiments/{key}/report.html": "/experiments/{key}/report",
    "GET /api/experiments/{key}/report.csv": "/experiments/{key}",
    "GET /v1/experiments/{key}/assignment": AD_SERVER,
    "POST /v1/experiments/{key}/ad-logs": AD_SERVER,
    # Journeys
    "GET /api/journeys": "/journeys",
    "POST /api/journeys": "/journeys",
    "GET /api/journeys/{key}": "/journeys/{key}",
    "PUT /api/journeys/{key}/definition": "/journeys/{key}/edit",
    "POST /api/journeys/{key}/status": "/journeys/{key}",
    "POST /api/journeys/{key}/entries": ApiOnly(
        "entering a person by hand is what a business's own system does for journeys whose "
        "entry is `api`; the journey page shows who entered"
    ),
    "POST /api/journeys/{key}/migrate": "/journeys/{key}",
    "GET /api/journeys/{key}/report": "/journeys/{key}",
    # Jobs and operations
    "GET /api/jobs": "/jobs",
    "GET /api/jobs/history": "/jobs",
    "POST /api/jobs/{name}/run": "/jobs",
    "PATCH /api/jobs/{name}": "/jobs",
    "GET /healthz": PROBE,
    # Recommendations
    "GET /v1/recommendations": ApiOnly(
        "called by the business's own site (accord.recommend in accord.js) with the write key; "
        "the recommendations page previews the same answer for any profile"
    ),
    "GET /api/products": "/recommendations/catalogue",
    "POST /api/products": ApiOnly(
        "sent by the shop's own system as products change, like identify for products; "
        "the catalogue page imports a CSV"
    ),
    "POST /api/products/import": "/recommendations/catalogue",
    "GET /api/recommendations/runs": "/recommendations",
    "GET /api/recommendations/preview": "/recommendations",
    "POST /api/recommendations/train": "/recommendations",
}


def _operations(client: TestClient) -> set[str]:
    paths = client.get("/openapi.json").json()["paths"]
    return {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}


def _pages(client: TestClient) -> set[str]:
    documented = set(client.get("/openapi.json").json()["paths"])
    return {
        path
        for path, route in _api_routes(list(client.app.routes))  # type: ignore[attr-defined]
        if "GET" in route.methods and path not in documented
    }


def test_every_api_operation_names_its_page_or_why_it_has_none(client: TestClient) -> None:
    operations = _operations(client)
    unlisted = sorted(operations - set(CAPABILITIES))
    gone = sorted(set(CAPABILITIES) - operations)
    assert not unlisted, f"operations without a page or a reason: {unlisted}"
    assert not gone, f"listed operations the API no longer has: {gone}"


def test_every_page_named_exists(client: TestClient) -> None:
    pages = _pages(client)
    missing = sorted({p for p in CAPABILITIES.values() if isinstance(p, str)} - pages)
    assert not missing, f"pages that do not exist: {missing}"


def test_the_docs_print_the_same_table() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text()
    for operation, page in CAPABILITIES.items():
        shown = page.reason if isinstance(page, ApiOnly) else f"`{page}`"
        row = re.compile(re.escape(f"| `{operation}` | {shown} |"))
        assert row.search(text), f"docs/console.md lacks the row of {operation}"


def table() -> str:
    """The table docs/console.md prints: `python -m tests.web.test_capabilities`."""
    rows = ["| API operation | page, or why it has none |", "|---|---|"]
    for operation, page in CAPABILITIES.items():
        shown = page.reason if isinstance(page, ApiOnly) else f"`{page}`"
        rows.append(f"| `{operation}` | {shown} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
