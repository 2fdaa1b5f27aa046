"""Control-plane activities: cloud providers and the workload notifier."""
