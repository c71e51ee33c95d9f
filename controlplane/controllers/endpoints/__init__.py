"""The Endpoints controller (`controller.py`) and the pod/service helpers it shares with the
EndpointSlice controller (`util.py`)."""

from controlplane.controllers.endpoints.controller import EndpointsController

__all__ = ["EndpointsController"]
