"""`pinnace up` (issue 7; not built yet)."""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print("pinnace up: not built yet (issue 7)", file=sys.stderr)
    return 1
