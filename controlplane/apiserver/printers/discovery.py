"""The discovery.k8s.io endpointslices printer: ADDRESSTYPE, PORTS, ENDPOINTS, AGE.

Owns the slice cells: at most three ports or addresses, then "+ N more...", and "<unset>" when
there are none; a port shows its number, else its name, else "*". Addresses of every endpoint
count, ready or not, as kube-apiserver prints them.
"""

from __future__ import annotations

from .common import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    items,
    list_with_more,
    name_of,
    text,
)


def _port_label(port: Obj) -> str:
    if port.get("port") is not None:
        return str(port.get("port"))
    if port.get("name") is not None:
        return text(port.get("name"))
    return "*"


def _endpointslice_cells(slice_: Obj, ctx: PrintContext) -> list[Cell]:
    ports = [_port_label(port) for port in items(slice_.get("ports"))]
    addresses = [
        str(address)
        for endpoint in items(slice_.get("endpoints"))
        for address in endpoint.get("addresses") or []
    ]
    return [
        name_of(slice_),
        text(slice_.get("addressType")),
        list_with_more(ports),
        list_with_more(addresses),
        age(slice_, ctx),
    ]


PRINTERS = {
    ("discovery.k8s.io", "endpointslices"): Printer(
        (
            NAME,
            Column("AddressType", description="The type of address carried by this slice."),
            Column("Ports", description="Network ports exposed by the endpoints."),
            Column("Endpoints", description="Addresses of the endpoints in this slice."),
            AGE,
        ),
        _endpointslice_cells,
    ),
}
