"""Shared API vocabulary: object meta, selectors, quantities, errors. Imports nothing of ours."""
