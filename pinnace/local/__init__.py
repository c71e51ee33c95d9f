"""Real components on one machine: etcd, containerd, a registry, node network namespaces.

`pinnace up` and the integration tests share this package: each class starts one real process
(or namespace) it owns, waits on a readiness gate rather than a sleep, and on `stop()` removes
exactly what it created (processes by PID, mounts under its own directory, its links), even after
a failure half-way.
"""
