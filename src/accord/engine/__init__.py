"""The batch engine: every difference between DuckDB and Spark, behind Ibis."""
