"""Pinnace's front door: the `pinnace` command and the `up` supervisor.

`pinnace.cli` dispatches each subcommand to the package that owns it; `pinnace.local` holds what
starts real components (etcd, containerd, the registry, node network namespaces) on one machine,
shared by `pinnace up` and the integration tests.
"""
