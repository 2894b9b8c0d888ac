"""Tables of analytics: the one spend model and the saved reports of the dashboard."""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, ForeignKey, Index, String, Table, Text

from accord.store.metadata import id_column_type, instant, metadata

# What marketing cost, one row per day, channel and campaign line. Every source of spend
# writes here (manual entries, Lead Ads and CSV lead imports, the leads funnel's campaign
# costs); ad-account campaigns' spend is read from their ad logs beside these rows.
spend_entries = Table(
    "spend_entries",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("day", Date, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("campaign", String(200), nullable=False),
    Column("amount", Float, nullable=False),
    # manual | leads | lead_ads | csv: who wrote the row.
    Column("origin", String(20), nullable=False),
    # The lead import a row came from, when it did.
    Column("origin_id", String(40), nullable=True),
    Column("created_at", instant(), nullable=False),
    Index("ix_spend_entries_business_day", "business_id", "day"),
)

saved_reports = Table(
    "saved_reports",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column("business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("spec", Text, nullable=False),  # JSON, as the kind's API takes it
    Column("result", Text, nullable=True),  # JSON of the last refresh
    Column("refreshed_at", instant(), nullable=True),
    Column("error", Text, nullable=True),  # why the last refresh failed
    Column("created_at", instant(), nullable=False),
    Index("ix_saved_reports_business", "business_id"),
)
