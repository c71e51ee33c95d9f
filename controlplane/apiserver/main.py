"""`pinnace apiserver` (issue 3; not built yet)."""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print("pinnace apiserver: not built yet (issue 3)", file=sys.stderr)
    return 1
