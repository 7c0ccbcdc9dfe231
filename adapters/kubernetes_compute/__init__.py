"""The Kubernetes compute backend: each attempt of a run is a batch/v1 Job in its consumer's namespace.

- `backend`: `KubernetesJobBackend`, the compute port, which decides which of the steps below a call takes;
- `connection`: the cluster's configuration, API clients and list+watch caches (`informer`), and where runs are;
- `jobs`: an attempt's Job created once, its status (rules in `status`), its deletion confirmed;
- `staging`: the attempt's Secret of presigned URLs the pod stages with, and the outputs it uploaded;
- `logs`: the workload's log followed live, and saved from every attempt's pod;
- `namespaces`: each consumer's runs namespace, prepared with its guards and quota, and released;
- `manifests`: every object above as a pure function of ids and the run's spec.
"""

from adapters.kubernetes_compute.backend import KubernetesJobBackend

__all__ = ["KubernetesJobBackend"]
