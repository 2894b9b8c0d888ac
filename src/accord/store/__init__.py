"""State store: SQLAlchemy metadata, connections and Alembic migrations."""
