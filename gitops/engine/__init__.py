"""Applying plans to hosts: observe, health gates, the lease, the executor, and ``apply.apply_plan``,
the one path every apply takes (`gitops apply`, `sync`, the daemon and the tests' deployer)."""
