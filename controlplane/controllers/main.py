"""`pinnace controller-manager` (issue 5; not built yet)."""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print("pinnace controller-manager: not built yet (issue 5)", file=sys.stderr)
    return 1
