"""Shared Kubernetes API vocabulary (object meta, selectors, quantities, errors); imports nothing of ours."""
