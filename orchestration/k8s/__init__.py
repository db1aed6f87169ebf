"""The production profile: Kubernetes manifests and dagster-k8s job specs, all rendered
from the same Settings as the local profile (see orchestration/k8s/manifests.py)."""
