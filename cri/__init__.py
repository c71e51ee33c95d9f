"""Our own CRI (runtime.v1) and containerd-native gRPC subsets, generated stubs, async clients.

- `cri/v1/api.proto`: the CRI RuntimeService and ImageService (upstream names and field numbers).
- `cri/containerd/*.proto`: containerd's events, content, images and leases services.
- `cri.runtime`: an asyncio client for the CRI with per-call deadlines.
- `cri.containerd_client`: an asyncio client for containerd's native services.
- `cri.errors`: gRPC failures mapped to our exceptions, naming the socket and the call.
- `cri.fake`: an in-memory RuntimeService/ImageService for unit tests of the agent.
Regenerate the stubs with `python -m cri.generate`.
"""
