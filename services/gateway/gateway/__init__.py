"""MLife gateway: one API, auth and roles, the web UI."""
