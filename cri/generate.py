"""Generate the Python stubs for every .proto under cri/ with grpcio-tools.

The generated `*_pb2.py`, `*_pb2.pyi` and `*_pb2_grpc.py` files are committed beside their .proto;
a test regenerates them into a scratch directory and fails if anything differs, so the stubs
can never drift from the .proto files. Run: `python -m cri.generate`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CRI_DIR = Path(__file__).resolve().parent
REPO_ROOT = CRI_DIR.parent


def proto_files() -> list[Path]:
    """Every .proto file we own, relative to the repository root, in a stable order."""
    return sorted(p.relative_to(REPO_ROOT) for p in CRI_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Compile every .proto into `out_dir`, keeping the `cri/...` package layout."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(REPO_ROOT / p) for p in proto_files()),
    ]
    cwd = os.getcwd()
    try:
        os.chdir(REPO_ROOT)
        code = protoc.main(args)
    finally:
        os.chdir(cwd)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")


def main() -> int:
    generate(REPO_ROOT)
    for proto in proto_files():
        print(f"generated stubs for {proto}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
