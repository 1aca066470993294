"""The event backbone: transactional outbox, relay, idempotent consumers, dead letters, streams."""
