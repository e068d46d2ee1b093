"""The ``gitops`` command line (``commands``) and what a person sees while an apply runs (``progress``)."""
