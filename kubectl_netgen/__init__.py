"""kubectl-netgen: NetworkPolicies from the traffic a workload really has."""

__version__ = "0.1.0"
