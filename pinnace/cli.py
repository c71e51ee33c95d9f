"""The `pinnace` command: one subcommand per daemon or tool, dispatched lazily.

Each subcommand is owned by a package that exposes `main(argv) -> int`; this module only picks the
package, so `pinnace images ...` never imports the control plane. An unknown subcommand prints the
usage and exits 2, as argparse does for any usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with main(argv), one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("pinnace.up", "bring a whole cluster up on this machine"),
    "apiserver": ("controlplane.apiserver.main", "run the Kubernetes API server"),
    "scheduler": ("controlplane.scheduler.main", "run the scheduler"),
    "controller-manager": ("controlplane.controllers.main", "run the controller-manager"),
    "cloud-controller-manager": (
        "controlplane.controllers.cloud_main",
        "run the cloud-controller-manager (local provider)",
    ),
    "agent": ("agent.main", "run the node agent (kubelet)"),
    "netproxy": ("netproxy.main", "run the node network proxy (kube-proxy and DNS)"),
    "images": ("agent.images.main", "build, import and push container images offline"),
    "certs": ("pinnace.certs", "make the PKI and kubeconfigs of a cluster of hosts"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinnace",
        description="A small, real Kubernetes-compatible cluster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pinnace COMMAND ARGS...` and return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0] not in SUBCOMMANDS:
        # argparse prints the usage and the bad choice, then exits 2.
        parser.parse_args(args[:1])
        return 2  # pragma: no cover - parse_args exits first
    module_name, _ = SUBCOMMANDS[args[0]]
    module = importlib.import_module(module_name)
    code: int = module.main(args[1:])
    return code
