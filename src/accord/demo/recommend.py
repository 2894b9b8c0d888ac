"""The demo's product catalogue, from the generator's products, and its recommendations,
trained once by the function the `recommend.train` job runs (the scheduler retrains)."""

from __future__ import annotations

from typing import Any

from accord.demo.generator import CATALOG, SHOP_URL
from accord.recommend import catalogue
from accord.recommend import service as recommend
from accord.store.db import Store


def fill_catalogue(store: Store, *, business_id: str) -> int | None:
    """Every product the demo shop sells, through the catalogue service; None when the
    catalogue holds products already."""
    items = [
        catalogue.parse_product(
            {
                "product_id": p.product_id,
                "name": p.name,
                "url": f"{SHOP_URL}/p/{p.slug}",
                "price": p.price,
                "currency": "EUR",
                "category": p.category,
                "in_stock": True,
            }
        )
        for p in CATALOG
    ]
    with store.write() as conn:
        total, _, _ = catalogue.listing(conn, business_id=business_id, limit=1)
        if total:
            return None
        return catalogue.upsert(conn, business_id=business_id, items=items)


def train_recommendations(
    store: Store, *, business_id: str, backend: Any, lake_url: str
) -> recommend.RunReport | None:
    """Train once; None when a training has finished before."""
    with store.read() as conn:
        done = [r for r in recommend.runs(conn, business_id=business_id) if r.status == "ok"]
    if done:
        return None
    return recommend.train(store, business_id=business_id, backend=backend, lake_url=lake_url)
