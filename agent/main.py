"""`pinnace agent` (issue 4; not built yet)."""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print("pinnace agent: not built yet (issue 4)", file=sys.stderr)
    return 1
