"""Storage of API objects: the `Storage` interface, etcd behind it, a memory fake, the watch cache.

Only this package talks to etcd. Objects are JSON dicts stored under `/registry/...` keys; an
object's `metadata.resourceVersion` is its key's mod_revision, a list's is the revision it was
read at. `interface` defines the contract, `etcd` implements it on etcd's v3 gRPC API,
`memory` implements it in memory for unit tests, `cacher` serves lists and watches from memory,
`codec` is the JSON they (and the HTTP layer) read and write.
"""
