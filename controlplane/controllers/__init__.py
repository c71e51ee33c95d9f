"""The controller-manager: one module per controller, each a sync(key) over informer caches.

To add a controller: subclass `base.Controller` (set name, component, kind, api_version; in
`__init__` take listers from `ctx.informers` and register handlers that only enqueue keys;
write `async def sync(self, key)`, level-triggered, copying cached objects before changing
them), add a `manager.Registration` to `manager.REGISTRY`, and test it with
`testing.harness()`: seed the caches, call `sync`, assert on `client.actions()`.
"""
