"""Persistence: SQLAlchemy tables and queries, and the blob store for tarballs."""
