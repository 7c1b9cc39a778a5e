"""The `raftkube` command and the composition root: the only package that wires kvstore, api, controllers and
node together into processes.

Where to start reading: cli.py (every command and the module that runs it), master.py (`Master.run` builds one
master: replica, store, both APIs, its control-plane child), up.py (a whole local cluster, and cluster.json),
control_plane.py and node.py (the other processes). chaos.py, demo.py, status.py and member.py act on a running
cluster; campaign.py with workload.py, nemesis.py, linearizability.py and history_checks.py is the Jepsen-style
harness behind `make chaos` (timeline.py draws a failing history). raftkube.testing offers the same clusters and
checks to the tests of other projects (a pytest plugin). docs/design.md describes the processes and the command line.
"""
