"""Lead magnets: coupon pools and codes, gated downloads through expiring links."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update

from accord.core.clock import iso, utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.core.signing import Signer
from accord.leads.models import (
    PoolIn,
    coupon_pools,
    coupons,
    leads,
)


def create_pool(conn: Connection, *, business_id: str, data: PoolIn) -> str:
    codes = [c.strip() for c in data.codes if c.strip()]
    if len(set(codes)) != len(codes):
        raise InvalidInput([FieldProblem("codes", "codes must be unique")])
    pool_id = new_id("cpn")
    conn.execute(
        coupon_pools.insert().values(
            id=pool_id, business_id=business_id, name=data.name, created_at=utcnow()
        )
    )
    for start in range(0, len(codes), 1000):
        conn.execute(
            coupons.insert(),
            [
                {"id": new_id("cp"), "business_id": business_id, "pool_id": pool_id, "code": c}
                for c in codes[start : start + 1000]
            ],
        )
    return pool_id


def assign_coupon(conn: Connection, *, business_id: str, pool_id: str, lead_id: str) -> str:
    """The lead's code from the pool: the one it already has, else the next free one."""
    held = conn.execute(
        select(coupons.c.code).where(coupons.c.pool_id == pool_id, coupons.c.lead_id == lead_id)
    ).scalar()
    if held is not None:
        return str(held)
    for _attempt in range(20):
        free = conn.execute(
            select(coupons.c.id, coupons.c.code)
            .where(coupons.c.pool_id == pool_id, coupons.c.lead_id.is_(None))
            .order_by(coupons.c.code)
            .limit(1)
        ).first()
        if free is None:
            raise Conflict(f"coupon pool {pool_id} has no codes left")
        # Taken only if still free, so two confirmations never share a code.
        taken = conn.execute(
            update(coupons)
            .where(coupons.c.id == free.id, coupons.c.lead_id.is_(None))
            .values(lead_id=lead_id, assigned_at=utcnow())
        ).rowcount
        if taken == 1:
            return str(free.code)
    raise Conflict("could not take a free coupon code; try again")


def redeem_coupon(conn: Connection, *, business_id: str, code: str) -> dict[str, Any]:
    row = conn.execute(
        select(coupons).where(coupons.c.business_id == business_id, coupons.c.code == code)
    ).first()
    if row is None:
        raise NotFound(f"coupon {code}")
    if row.lead_id is None:
        raise Conflict(f"coupon {code} was never given to anyone")
    if row.redeemed_at is not None:
        raise Conflict(f"coupon {code} was already redeemed at {iso(row.redeemed_at)}")
    now = utcnow()
    conn.execute(update(coupons).where(coupons.c.id == row.id).values(redeemed_at=now))
    return {"code": code, "lead_id": row.lead_id, "redeemed_at": now}


def magnet_path(data_dir: Path, *, business_id: str, name: str) -> Path:
    return data_dir / "magnets" / business_id / name


def download_target(
    conn: Connection,
    *,
    token: str,
    signer: Signer,
    max_age_seconds: int,
    data_dir: Path,
) -> Path:
    lead_id, _form_id, name = signer.loads_timed(
        "download", token, max_age_seconds=max_age_seconds, what="download"
    )
    lead = conn.execute(select(leads.c.business_id).where(leads.c.id == lead_id)).first()
    if lead is None:
        raise NotFound("download")
    path = magnet_path(data_dir, business_id=lead.business_id, name=str(name))
    if not path.is_file():
        raise NotFound(f"download {name}")
    return path


@dataclass
class PoolView:
    id: str
    name: str
    codes: int
    given: int
    redeemed: int


def list_pools(conn: Connection, *, business_id: str) -> list[PoolView]:
    rows = conn.execute(
        select(
            coupon_pools.c.id,
            coupon_pools.c.name,
            func.count(coupons.c.id),
            func.count(coupons.c.lead_id),
            func.count(coupons.c.redeemed_at),
        )
        .select_from(coupon_pools.outerjoin(coupons, coupons.c.pool_id == coupon_pools.c.id))
        .where(coupon_pools.c.business_id == business_id)
        .group_by(coupon_pools.c.id, coupon_pools.c.name)
        .order_by(coupon_pools.c.name)
    ).all()
    return [PoolView(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def magnet_files(data_dir: Path, *, business_id: str) -> list[dict[str, Any]]:
    """The gated downloads uploaded for a business, with their sizes."""
    folder = magnet_path(data_dir, business_id=business_id, name="x").parent
    if not folder.is_dir():
        return []
    return [
        {"name": p.name, "bytes": p.stat().st_size} for p in sorted(folder.iterdir()) if p.is_file()
    ]
