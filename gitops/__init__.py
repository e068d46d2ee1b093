"""gitops: a declarative GitOps reconciler for Docker hosts."""

from gitops.hosts._docker_ssh import defer_ssh_transport

# Before anything imports docker: paramiko stays unimported unless an ssh:// host is used (start-up time).
defer_ssh_transport()
