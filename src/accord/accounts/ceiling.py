"""Nobody grants more than they hold.

Whoever sets a role, asset tasks, an invitation or a partner share — a person in the UI or
a token through the API — must themselves hold everything it gives: every permission of
the role (through their own role, tasks and, for a token, its scope) and every task on
each asset named. Changing the role or the tasks of someone who holds more than the
caller is refused the same way, so a limited token cannot demote the admins either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection

from accord.accounts import permissions
from accord.accounts.service import Access, check_asset, granted_permissions
from accord.core.errors import Forbidden, NotFound


def role_permissions(role: str) -> frozenset[str]:
    """Everything a role gives: its own permissions and those of the tasks it holds on
    assets without a grant."""
    held = set(permissions.ROLES.get(role, frozenset()))
    for tasks in permissions.ROLE_ASSET_TASKS.get(role, {}).values():
        for task in tasks:
            held |= permissions.TASKS[task]
    return frozenset(held)


def check_role(conn: Connection, *, by: Access, role: str) -> None:
    """Refuse (`Forbidden`) giving `role` — or changing it — unless `by` holds all it gives."""
    if role not in permissions.ROLES:
        return  # the caller's own validation names the unknown role
    missing = sorted(role_permissions(role) - granted_permissions(conn, access=by))
    asset_tasks = [
        (kind, task)
        for kind, tasks in permissions.ROLE_ASSET_TASKS.get(role, {}).items()
        for task in sorted(tasks)
        if not permissions.role_task_on(by.role, kind, task)
    ]
    if missing or asset_tasks:
        what = ", ".join(missing) or ", ".join(f"{t} on every {k}" for k, t in asset_tasks)
        raise Forbidden(f"you cannot give or change the role {role}: you do not hold {what}")


def check_tasks(conn: Connection, *, by: Access, grants: Mapping[str, Iterable[str]]) -> None:
    """Refuse (`Forbidden`) giving or taking tasks on assets unless `by` holds each of them
    on that asset (and, for a token, every permission the task grants)."""
    held = granted_permissions(conn, access=by)
    for asset_id, tasks in grants.items():
        for task in sorted(set(tasks)):
            if task not in permissions.TASKS:
                continue  # the caller's own validation names the unknown task
            beyond = sorted(permissions.TASKS[task] - held)
            if beyond:
                raise Forbidden(
                    f"you cannot give the task {task}: you do not hold {', '.join(beyond)}"
                )
            try:
                check_asset(conn, access=by, asset_id=asset_id, kind=None, task=task)
            except NotFound:
                raise Forbidden(
                    f"you cannot give the task {task} on {asset_id}: you do not hold it there"
                ) from None
