"""The agent's Node: registration, status and conditions, the node Lease, and the CNI config.

`NodeManager(client, runtime, config)` is what the agent's main runs: `register()` once, then
`run()` for the agent's lifetime. The pure parts (conditions, status, patches) live in their own
modules so they can be tested without an apiserver or a containerd; `machine` is the one place
that reads the host (procfs, sysfs, statvfs), with a fake beside it.
"""

from agent.node.config import NodeConfig, parse_taint, parse_taints
from agent.node.machine import FakeMachine, FsStats, HostMachine, Machine, Sample, SystemInfo
from agent.node.manager import NodeManager, NodeRuntime

__all__ = [
    "NodeManager",
    "NodeConfig",
    "NodeRuntime",
    "parse_taint",
    "parse_taints",
    # measuring the machine
    "Machine",
    "HostMachine",
    "FakeMachine",
    "Sample",
    "FsStats",
    "SystemInfo",
]
