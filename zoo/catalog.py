"""Deprecated: `zoo.catalog.cached` is `zoo.cached_catalog` now (removed in the next release)."""

from zoo.util.deprecated import moved

__getattr__ = moved("zoo.catalog", {"cached": ("zoo.util.catalog", "cached")})
