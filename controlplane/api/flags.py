"""Flag values as Kubernetes' daemons write them: Go durations and booleans.

Shared by every daemon's command line (controller managers, netproxy, agent). `go_duration` is
Go's time.ParseDuration ("1m30s", "500ms", "-2s") or a plain number of seconds; `duration` is
the same for periods and timeouts, which cannot be negative; `boolean` takes true/false, 1/0,
yes/no.
"""

from __future__ import annotations

import argparse
import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """A Go duration ("2m0s", "500ms", "-1s") or a number of seconds, in seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        parts = _PART.findall(body)
        if not body or "".join(n + u for n, u in parts) != body:
            raise argparse.ArgumentTypeError(
                f'invalid duration "{text}" (e.g. 30s, 500ms, 1m30s)') from None
        return sign * sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f'invalid duration "{text}" (e.g. 30s, 500ms, 1m30s)')
    return seconds


def duration(text: str) -> float:
    """A period or timeout: a Go duration or seconds, never negative."""
    seconds = go_duration(text)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f'invalid duration "{text}": must not be negative')
    return seconds


def boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")
