"""The kube-apiserver: Kubernetes objects stored in the replicated store, served to kubectl.

How a create travels: `api.server` routes `POST /api/v1/namespaces/NS/configmaps` to a handler,
which checks the body (`api.objects`), fills metadata, and calls `api.storage.ObjectStore.create`,
which writes the object under `/registry/configmaps/NS/NAME` with a compare-and-swap txn on the
Store (version 0: it must not exist). The object's resourceVersion is the key's mod_revision.
"""
