"""`pinnace netproxy` (issue 6; not built yet)."""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print("pinnace netproxy: not built yet (issue 6)", file=sys.stderr)
    return 1
