"""The Docker driver: the only package that imports docker, and its mapping from specs to requests."""
