"""MLife's shared library: the only code the services have in common."""
