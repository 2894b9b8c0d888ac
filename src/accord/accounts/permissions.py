"""Which roles and asset tasks grant which permissions: the one table, as data.

A permission is `<area>.<action>`. A route names the one it needs through
`web.auth.requires`; `allowed` answers from this table, and anything not in it is
denied. Add a new area by adding its permissions here and to the roles and tasks
that should grant them.
"""

from __future__ import annotations

from collections.abc import Iterable

from accord.core.errors import Forbidden

# Every permission a route may require, with what it lets the caller do.
PERMISSIONS: dict[str, str] = {
    "profiles.read": "see profiles, their identifiers, traits and events",
    "profiles.manage": "change or erase profiles (subject-rights requests)",
    "identity.read": "see the identity graph and merge evidence",
    "identity.manage": "merge and unmerge identities, change identity rules",
    "reports.read": "see reports and dashboards",
    "analytics.read": (
        "run funnels, paths, retention and attribution over the business's events; "
        "see acquisition cost, spend and saved reports"
    ),
    "analytics.manage": "enter spend and save reports to the dashboard",
    "consent.read": "see purposes, banners and consent records",
    "consent.manage": "change purposes, vendors, banners and geo rules",
    "audiences.read": "see audiences and their members",
    "audiences.manage": "create, change and export audiences",
    "leads.read": "see lead forms and leads",
    "leads.manage": "create forms and landing pages, change leads",
    "email.read": "see email templates, sends and outcomes",
    "email.manage": "write templates and send email",
    "experiments.read": "see experiments and their results",
    "experiments.manage": "design, start and stop experiments",
    "journeys.read": "see journeys and their runs",
    "journeys.manage": "build, start and stop journeys",
    "ads.read": "see ad accounts and campaigns",
    "ads.manage": "create campaigns, change budgets, spend limits and ad accounts",
    "assets.read": "see the business's assets (only the assigned ones for employees)",
    "assets.manage": "create assets and change their settings",
    "accounts.read": "see the business, its people and partners",
    "accounts.manage": "change the business, people, roles, partners, tokens and security",
    "audit.read": "read and export the audit log",
    "jobs.read": "see scheduled jobs and their runs",
    "jobs.manage": "run jobs now and change their schedules",
}

READS = frozenset(p for p in PERMISSIONS if p.endswith(".read"))

# What each business role grants on its own, whatever the assets.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "finance": frozenset(
        {
            "ads.read",
            "ads.manage",
            "reports.read",
            "analytics.read",
            "analytics.manage",
            "assets.read",
            "accounts.read",
            "audit.read",
        }
    ),
    "analyst": READS - {"accounts.read", "audit.read"},
    # Employees get only what the tasks on their assigned assets grant.
    "employee": frozenset({"assets.read"}),
}

ROLE_LABELS: dict[str, str] = {
    "admin": "Admin — full control of the business",
    "employee": "Employee — only the assets assigned",
    "finance": "Finance — ad accounts, spend and reports",
    "analyst": "Analyst — read-only access to everything but people",
}

# Permissions whose every route acts on one asset and checks the caller's task on it
# (`web.auth.require_asset`, `service.visible_assets`): a task held on an asset grants
# them there, and only there. Every other permission opens data of the whole business —
# profiles fed by every pixel, leads, consent records and exports, journeys, email,
# audiences, experiments, reports — so only a business role grants it, never a task on
# one asset (issue 19 item 4; the table per route is in docs/accounts.md).
PER_ASSET: frozenset[str] = frozenset({"assets.read", "assets.manage", "ads.read", "ads.manage"})

# What a task on one asset grants, on that asset.
TASKS: dict[str, frozenset[str]] = {
    "manage": PER_ASSET,
    "advertise": frozenset({"ads.read", "ads.manage", "assets.read"}),
    "analyse": frozenset({"ads.read", "assets.read"}),
    "edit_content": frozenset({"assets.read"}),
    "manage_leads": frozenset({"assets.read"}),
}

TASK_LABELS: dict[str, str] = {
    "manage": "Manage (full control of the asset)",
    "advertise": "Advertise",
    "analyse": "Analyse",
    "edit_content": "Edit content",
    "manage_leads": "Manage leads",
}

# The tasks a role holds on every asset of the business without a grant.
ROLE_ASSET_TASKS: dict[str, dict[str, frozenset[str]]] = {
    "admin": {"*": frozenset(TASKS)},
    "analyst": {"*": frozenset({"analyse"})},
    "finance": {"ad_account": frozenset({"analyse", "advertise", "manage"})},
    "employee": {},
}


def known(permission: str) -> bool:
    return permission in PERMISSIONS


def role_grants(role: str, permission: str) -> bool:
    return permission in ROLES.get(role, frozenset())


def tasks_grant(tasks: Iterable[str], permission: str) -> bool:
    return any(permission in TASKS.get(task, frozenset()) for task in tasks)


def allowed(role: str, granted_tasks: Iterable[str], permission: str) -> bool:
    """Whether a role plus the tasks held on any asset allow `permission` (unknown: no).

    Tasks count only for `PER_ASSET` permissions, whose routes then check the asset."""
    if not known(permission):
        return False
    if role_grants(role, permission):
        return True
    return permission in PER_ASSET and tasks_grant(granted_tasks, permission)


def role_task_on(role: str, asset_kind: str, task: str) -> bool:
    """Whether a role holds `task` on every asset of `asset_kind` without a grant."""
    by_kind = ROLE_ASSET_TASKS.get(role, {})
    held = by_kind.get("*", frozenset()) | by_kind.get(asset_kind, frozenset())
    return task in held


# Tasks that also let a person look at an asset (what `analyse` is asked for on pages and
# reads of that asset): who places campaigns in an ad account sees it and its campaigns.
ALSO_SEES: dict[str, tuple[str, ...]] = {"ad_account": ("advertise",)}


def accepted_tasks(asset_kind: str, task: str) -> tuple[str, ...]:
    """The tasks any one of which allows `task` on an asset of `asset_kind`."""
    return (task, *ALSO_SEES.get(asset_kind, ())) if task == "analyse" else (task,)


def holds(tasks: Iterable[str], task: str) -> bool:
    """`manage` on an asset includes every other task on it."""
    given = set(tasks)
    return task in given or "manage" in given


# Who may create assets of each kind. Owning a new asset is the business's own decision,
# so only roles count here, never tasks held on other assets.
ASSET_CREATORS: dict[str, tuple[str, ...]] = {
    "pixel": ("admin",),
    "property": ("admin",),
    "social_account": ("admin",),
    "ad_account": ("admin", "finance"),
}


def may_create(role: str, asset_kind: str) -> bool:
    return role in ASSET_CREATORS.get(asset_kind, ())


def creator_refusal(asset_kind: str) -> str:
    """Why a role not in `ASSET_CREATORS` is refused, in words."""
    who = " and ".join(f"{r}s" if r == "admin" else r for r in ASSET_CREATORS[asset_kind])
    what = "ad accounts" if asset_kind == "ad_account" else "assets"
    return f"only {who} create {what}"


def check_may_create(role: str, asset_kind: str) -> None:
    """Refuse (`Forbidden`) a role that may not create assets of this kind."""
    if not may_create(role, asset_kind):
        raise Forbidden(creator_refusal(asset_kind))
