"""`pinnace images build|import|push|mirror`: images for air-gapped nodes, no internet involved.

`mirror` writes containerd's hosts.toml so that a registry (docker.io) is pulled through a
mirror, e.g. `pinnace images mirror docker.io http://10.0.0.10:5000 --config-dir
/etc/containerd/certs.d` on a node whose containerd has that `registry.config_path`.

Every failure prints one line naming the file, socket or registry and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.images import build, importer, layout, mirrors, registry
from cri import errors


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace images", description=__doc__)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="write pause.tar and busybox.tar (OCI layouts) into DIR")
    b.add_argument("dir", type=Path, metavar="DIR")
    b.add_argument("--busybox", default=build.BUSYBOX, help="the static busybox binary to use")
    i = sub.add_parser("import", help="import an OCI or docker-archive tar into containerd")
    i.add_argument("file", type=Path, metavar="FILE")
    i.add_argument("--containerd", required=True, metavar="SOCK", help="containerd's socket")
    i.add_argument("--name", action="append", default=[], metavar="REF",
                   help="name the (single) image REF instead of the names in the archive")
    u = sub.add_parser("push", help="push the image of a tar to an OCI registry")
    u.add_argument("file", type=Path, metavar="FILE")
    u.add_argument("ref", metavar="REF", help="e.g. 127.0.0.1:5000/busybox:1")
    u.add_argument("--plain-http", action="store_true", help="use http even off loopback")
    m = sub.add_parser("mirror", help="pull REGISTRY through MIRROR (containerd's hosts.toml)")
    m.add_argument("registry", metavar="REGISTRY", help="e.g. docker.io")
    m.add_argument("mirror", nargs="+", metavar="MIRROR", help="e.g. http://10.0.0.10:5000")
    m.add_argument("--config-dir", type=Path, default=Path("/etc/containerd/certs.d"),
                   help="containerd's registry config_path")
    return p


async def run(args: argparse.Namespace) -> None:
    if args.action == "build":
        for image in build.build_all(args.dir, args.busybox):
            print(f"{image.path}\t{','.join(image.names)}\t{image.digest}")
    elif args.action == "import":
        for imported in await importer.import_archive(args.file, args.containerd, args.name):
            print(f"{imported.name}\t{imported.digest}")
    elif args.action == "push":
        archive = layout.read_archive(args.file)
        digest = await registry.push(archive, args.ref,
                                     scheme="http" if args.plain_http else None)
        print(f"{args.ref}\t{digest}")
    elif args.action == "mirror":
        for path in mirrors.write_hosts(args.config_dir, {args.registry: args.mirror}):
            print(path)


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except (layout.ImageArchiveError, registry.RegistryError, errors.CRIError,
            mirrors.MirrorError, OSError) as exc:
        print(f"pinnace images {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
