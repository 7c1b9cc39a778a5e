"""The node agents: the kubelet (pod workers over a process or a fake runtime) and kube-proxy; API clients only."""
