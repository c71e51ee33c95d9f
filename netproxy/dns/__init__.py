"""Cluster DNS: the Kubernetes DNS-based service discovery records, served on every node.

`records` is the pure resolver over the Service and EndpointSlice caches, `server` the UDP/TCP
wire protocol (dnspython) with forwarding to upstreams, `main` the wiring to the API (informers)
and the flags. The netproxy daemon calls `netproxy.dns.main.run`.
"""
