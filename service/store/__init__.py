"""The comment store: SQLAlchemy 2 over SQLite (embedded default) or PostgreSQL."""
