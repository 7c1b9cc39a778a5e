"""The etcd replacement: an MVCC key-value store replicated by Raft, serving etcd's v3 API. Knows nothing of
Kubernetes (an import-linter contract in pyproject.toml keeps it so).

Where to start reading:
- mvcc.py: the state machine. `StateMachine.apply(command) -> (result, events)` is the only way state changes;
  pure (no clock, no I/O, never raises), with key_index.py, leases.py and kv.py beneath it, and
  snapshot_state.py (how it is packed into a snapshot);
- store.py: `Store`, what the APIs call: `propose` a write, `read_index` before a linearizable read, `range`;
  its docstring walks one write through the package;
- replica.py: the Raft glue around pysyncobj (`Replica`, `KVConsumer.apply_batch`), with journal.py and
  disk_sync.py (on disk before it counts), read_index.py (linearizable reads), log_matching.py, prevote.py,
  member_identity.py, membership.py, raft_encoding.py (cheaper messages, pickles and snapshots);
- watch.py: `WatchHub`, fed in apply order; lessor.py and leader_duties.py: leases on the leader's clock;
- etcd_service.py: etcd's v3 API once, served as JSON (gateway.py) and gRPC (grpc_server.py) on one port
  (kv_port.py).
docs/raft.md explains the replication; docs/design.md follows a write from kubectl to a watch event.
"""
