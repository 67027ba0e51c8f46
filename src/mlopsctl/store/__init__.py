"""Storage: one small interface (get, put, put-if-absent, compare-and-swap, list)."""

from mlopsctl.store.base import Store, open_store

__all__ = ["Store", "open_store"]
