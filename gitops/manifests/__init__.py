"""From a repository checkout to a DesiredState: safe YAML, JSON Schema, checks, policy, build.

``load.load_repo`` is the one entry point. Pure apart from reading the checkout's files through a
callable that keeps every path inside it.
"""
