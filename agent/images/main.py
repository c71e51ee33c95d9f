"""`pinnace images build|import|push`: images for air-gapped nodes, no internet involved.

Every failure prints one line naming the file, socket or registry and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.images import build, importer, layout, registry
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


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except (layout.ImageArchiveError, registry.RegistryError, errors.CRIError,
            FileNotFoundError) as exc:
        print(f"pinnace images {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
