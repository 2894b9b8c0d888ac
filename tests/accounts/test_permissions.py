"""The permission table: roles, tasks, unknown permissions; signed links."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from accord.accounts import permissions

REQUIRED = {
    "profiles.read",
    "reports.read",
    "consent.read",
    "consent.manage",
    "audiences.read",
    "audiences.manage",
    "leads.read",
    "leads.manage",
    "email.read",
    "email.manage",
    "experiments.read",
    "experiments.manage",
    "journeys.read",
    "journeys.manage",
    "accounts.manage",
}


def test_every_permission_other_contexts_need_is_listed() -> None:
    assert set(permissions.PERMISSIONS) >= REQUIRED


def test_admin_holds_everything_and_employee_only_through_tasks() -> None:
    for permission in permissions.PERMISSIONS:
        assert permissions.allowed("admin", [], permission)
    assert not permissions.allowed("employee", [], "profiles.read")
    # Tasks grant what their routes check on the asset; business-wide data needs a role.
    assert permissions.allowed("employee", ["analyse"], "ads.read")
    assert not permissions.allowed("employee", ["analyse"], "profiles.read")
    assert not permissions.allowed("employee", ["analyse"], "ads.manage")
    assert permissions.allowed("employee", ["advertise"], "ads.manage")
    assert not permissions.allowed("employee", ["advertise"], "audiences.manage")
    assert not permissions.allowed("employee", ["manage"], "accounts.manage")


def test_analyst_reads_and_finance_handles_ads() -> None:
    assert permissions.allowed("analyst", [], "reports.read")
    assert not permissions.allowed("analyst", [], "consent.manage")
    assert permissions.allowed("finance", [], "ads.manage")
    assert not permissions.allowed("finance", [], "email.manage")


@given(st.text(min_size=1, max_size=40))
def test_unknown_permissions_are_denied_to_every_role(permission: str) -> None:
    if permission in permissions.PERMISSIONS:
        return
    for role in permissions.ROLES:
        assert not permissions.allowed(role, list(permissions.TASKS), permission)


def test_manage_includes_every_task_on_an_asset() -> None:
    assert permissions.holds(["manage"], "advertise")
    assert not permissions.holds(["analyse"], "advertise")
    assert permissions.role_task_on("admin", "pixel", "manage")
    assert permissions.role_task_on("finance", "ad_account", "advertise")
    assert not permissions.role_task_on("finance", "pixel", "analyse")
