"""The batch engine: an Ibis backend from a URL (DuckDB or Spark) and the lake as a table."""
