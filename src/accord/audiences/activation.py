"""Exports: an audience's members in a destination's format, consent and suppression applied."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from accord.audiences import exports
from accord.audiences.definitions import find_stored
from accord.audiences.exports import Destination, InterestGroupOptions
from accord.audiences.membership import member_ids
from accord.audiences.service import _reachable
from accord.core.errors import FieldProblem, InvalidInput
from accord.reach import service as reach

# The purpose a destination's consent must cover. In the consent model, `marketing`
# is advertising and personalised ads (TCF purposes 1-4, Consent Mode ad_* signals).
DESTINATION_PURPOSES: dict[str, str] = {
    "csv": "marketing",
    "meta": "marketing",
    "google": "marketing",
    "interest_groups": "marketing",
}


@dataclass
class Export:
    body: bytes
    media_type: str
    included: int
    left_out: dict[str, int]


def interest_group_options(
    destination: Destination, owner: str | None, bidding_logic_url: str | None
) -> InterestGroupOptions | None:
    """The buyer's origin and bidding logic an interest-groups export needs, when both are
    given (`export_audience` refuses an interest-groups export without them)."""
    owner, bidding_logic_url = (owner or "").strip(), (bidding_logic_url or "").strip()
    if destination != "interest_groups" or not owner or not bidding_logic_url:
        return None
    return InterestGroupOptions(owner=owner, bidding_logic_url=bidding_logic_url)


def export_audience(
    conn: Connection,
    *,
    business_id: str,
    audience: str,
    destination: Destination,
    purpose: str | None = None,
    interest_groups: InterestGroupOptions | None = None,
) -> Export:
    """The audience's members in the destination's format, consent and suppression applied."""
    found = find_stored(conn, business_id, audience)
    purpose = purpose or DESTINATION_PURPOSES[destination]
    if destination == "interest_groups" and interest_groups is None:
        raise InvalidInput(
            [
                FieldProblem(
                    "owner",
                    "interest groups need the buyer's owner origin (`owner`) "
                    "and bidding logic URL (`bidding_logic_url`)",
                )
            ]
        )
    kept, left_out = _reachable(
        conn,
        business_id=business_id,
        profile_ids=member_ids(conn, business_id=business_id, audience=found.id),
        purpose=purpose,
    )
    rendered = exports.render(
        destination,
        kept,
        audience=found.slug,
        interest_groups=interest_groups,
        default_region=reach.phone_region(conn, business_id=business_id),
    )
    if rendered.unmatchable:
        left_out[f"nothing {destination} can match on"] += rendered.unmatchable
    return Export(
        body=rendered.body,
        media_type=rendered.media_type,
        included=len(kept) - rendered.unmatchable,
        left_out=dict(sorted(left_out.items())),
    )
