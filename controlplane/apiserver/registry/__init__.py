"""The registry: one generic `Store` for every resource plus a small `Strategy` per kind.

`resources` lists what the API serves (group, version, resource, kind, scope, short names,
subresources) and which strategy governs each; `store` implements the verbs once; the
`strategy_*` modules hold the per-kind policy (defaults, validation, what a status write may
change), as Kubernetes' pkg/registry does.
"""
