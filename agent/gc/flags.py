"""The agent's garbage collection flags, named as the kubelet names them, and their parsing.

`--container-gc-period` and `--image-gc-period` are ours (the kubelet hard-codes 1m and 5m):
tests shorten them. Durations are Go's: "2m0s", "90s", "1m30s", "500ms", or plain seconds.
"""

from __future__ import annotations

import argparse

from agent.gc.policy import CONTAINER_GC_PERIOD, IMAGE_GC_PERIOD, GCPolicy
from controlplane.api.flags import go_duration as duration


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("garbage collection")
    g.add_argument("--maximum-dead-containers-per-container", type=int, default=1, metavar="N",
                   help="dead containers kept per (pod, container name); < 0: no limit")
    g.add_argument("--maximum-dead-containers", type=int, default=-1, metavar="N",
                   help="dead containers kept on the node in all; < 0: no limit")
    g.add_argument("--minimum-container-ttl-duration", type=duration, default=0.0,
                   metavar="DURATION",
                   help="minimum age of a dead container before it is collected")
    g.add_argument("--image-gc-high-threshold", type=int, default=85, metavar="PERCENT",
                   help="percent of image filesystem usage from which image GC runs (100: off)")
    g.add_argument("--image-gc-low-threshold", type=int, default=80, metavar="PERCENT",
                   help="percent of image filesystem usage image GC frees down to")
    g.add_argument("--minimum-image-ttl-duration", type=duration, default=120.0, metavar="DURATION",
                   help="minimum age of an unused image before it is collected")
    g.add_argument("--pod-infra-container-image", default="", metavar="IMAGE",
                   help="the sandbox image, never collected (default: containerd's)")
    g.add_argument("--container-gc-period", type=duration, default=CONTAINER_GC_PERIOD,
                   metavar="DURATION", help="how often dead containers are collected (1m)")
    g.add_argument("--image-gc-period", type=duration, default=IMAGE_GC_PERIOD,
                   metavar="DURATION", help="how often image GC runs (5m)")


def policy_of(args: argparse.Namespace) -> GCPolicy:
    return GCPolicy(
        max_per_pod_container=args.maximum_dead_containers_per_container,
        max_containers=args.maximum_dead_containers,
        min_container_age=args.minimum_container_ttl_duration,
        image_high_threshold=args.image_gc_high_threshold,
        image_low_threshold=args.image_gc_low_threshold,
        min_image_age=args.minimum_image_ttl_duration,
        sandbox_image=args.pod_infra_container_image,
        container_gc_period=args.container_gc_period, image_gc_period=args.image_gc_period)
