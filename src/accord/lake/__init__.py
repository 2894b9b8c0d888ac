"""The event lake: immutable Parquet history partitioned by business and day."""
