"""The kube-apiserver: Kubernetes objects stored in the replicated store, served to kubectl.

How a create travels: `api.server.ApiServer.resource` routes `POST /api/v1/namespaces/NS/configmaps` (paths in
api/paths.py) to `ApiServer.create`, which decodes the body against Kubernetes' types (api/fields.py,
api/schema.py); `api.admission.Admission` builds the object (api/objects.py: name, uid, timestamps), fills
defaults (api/defaults.py), validates it (api/validation.py) and checks its namespace; then
`api.storage.ObjectStore.create` writes it under `/registry/configmaps/NS/NAME` with a compare-and-swap txn on
the Store (version 0: it must not exist). The object's resourceVersion is the key's mod_revision. Watches are
api/watching.py; api/client.py is the client every controller and kubelet uses. docs/design.md follows the same
write down through the store to a watch event.
"""
