"""Sequences that span the store and the blob store for more than one route family (no HTTP here)."""
