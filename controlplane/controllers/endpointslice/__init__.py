"""The EndpointSlice controller (`controller.py`) over its pure reconciler (`reconciler.py`)."""

from controlplane.controllers.endpointslice.controller import (
    EndpointSliceController,
    add_flags,
)

__all__ = ["EndpointSliceController", "add_flags"]
