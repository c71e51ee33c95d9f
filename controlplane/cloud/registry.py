"""Cloud providers by name, as --cloud-provider picks them.

A provider is a module with a factory taking the --cloud-config file's text ("" without one) and
returning a `CloudProvider`, or raising ValueError with a one-line reason. `register` adds one;
the built-in ones are listed in `_BUILTIN` and imported only when asked for. The controllers
never name a provider: they ask the `CloudProvider` for its parts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from controlplane.cloud.provider import CloudProvider

Factory = Callable[[str], CloudProvider]
_BUILTIN = {"local": "controlplane.cloud.local:from_config"}  # name -> "module:factory"
_registered: dict[str, Factory] = {}  # registered at run time (other providers, tests)


def register(name: str, factory: Factory) -> None:
    """Make `factory` the provider called `name`; a name is registered only once."""
    if name in _registered or name in _BUILTIN:
        raise ValueError(f"cloud provider {name!r} is already registered")
    _registered[name] = factory


def names() -> list[str]:
    return sorted({*_BUILTIN, *_registered})


def factory(name: str) -> Factory:
    if name in _registered:
        return _registered[name]
    if name not in _BUILTIN:
        raise ValueError(f"unknown cloud provider {name!r} (known: {', '.join(names())})")
    module, _, attr = _BUILTIN[name].partition(":")
    built: Factory = getattr(importlib.import_module(module), attr)
    return built


def read_config(path: str) -> str:
    """The --cloud-config file's text ("" without one); raise ValueError naming the file."""
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"--cloud-config {path}: {exc.strerror or exc}") from None


def get_cloud_provider(name: str, config_text: str) -> CloudProvider:
    """The provider `name` built from its config; raise ValueError with a one-line reason."""
    return factory(name)(config_text)
