"""The product catalogue and the precomputed tables recommendations are served from."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, String, Table, Text

from accord.store.metadata import id_column_type, instant, metadata

# One row per product a business sells (imported from CSV or sent one by one).
products = Table(
    "products",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("product_id", String(255), primary_key=True),
    Column("name", String(500), nullable=False),
    Column("url", String(2000), nullable=True),
    Column("image", String(2000), nullable=True),
    Column("price", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("category", String(255), nullable=True),
    Column("in_stock", Boolean, nullable=False),
    Column("updated_at", instant(), nullable=False),
)

# Every training: which model, how long, its holdout quality, whether it is served.
recommendation_runs = Table(
    "recommendation_runs",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model", String(40), nullable=True),
    Column("started_at", instant(), nullable=False),
    Column("finished_at", instant(), nullable=True),
    # JSON: per model, its quality and training time; counts of what was written.
    Column("evaluation", Text, nullable=False),
    Column("counts", Text, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_recommendation_runs_business_started", "business_id", "started_at"),
)

# Item to item: the products most related to each product, by the served model.
recommendation_neighbours = Table(
    "recommendation_neighbours",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("product_id", String(255), primary_key=True),
    Column("related_id", String(255), primary_key=True),
    Column("score", Float, nullable=False),
)

# Per person who allowed personalisation: the products they interacted with, time-decayed.
recommendation_histories = Table(
    "recommendation_histories",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("profile_id", id_column_type(), primary_key=True),
    Column("product_id", String(255), primary_key=True),
    Column("strength", Float, nullable=False),
    Column("bought", Boolean, nullable=False),
    Column("last_seen_at", instant(), nullable=False),
)

# The popularity fallback: recent, time-decayed interest over everyone.
recommendation_popular = Table(
    "recommendation_popular",
    metadata,
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), primary_key=True),
    Column("product_id", String(255), primary_key=True),
    Column("score", Float, nullable=False),
)
