"""The node agents: the kubelet (pod workers over a process or a fake runtime) and kube-proxy; API clients only.

Where to start reading: kubelet.py (register the Node, renew its Lease, one PodWorker per bound pod),
pod_worker.py (one pod's life: sandbox, volumes, init containers, containers, status, deletion),
container_runner.py (restarts, CrashLoopBackOff, probes), runtime.py (what a runtime does; runtime_process.py and
runtime_fake.py), sandbox.py and volumes.py (a pod's IP and files), kubelet_server.py (logs, exec, attach,
port-forward and stats for the API server), proxy.py (kube-proxy). docs/concepts.md maps them to Kubernetes.
"""
