"""The platform harness every suite uses: one copy of the set-up the tests need.

- `postgres`: the test server's address, migrated databases cloned from a per-session template.
- `processes`: free ports, processes with their log files, waiting for `/healthz`, stopping.
- `nats`: a NATS JetStream server of a suite's own (plain, or as compose runs it with per-service users).
- `waiting`: `wait_for`, polling a condition.
- `auth`: the services' identity secret and `as_role` headers.
- `objects`: the S3 server's settings.
- `outbox`: the events a service wrote to its outbox.
"""
