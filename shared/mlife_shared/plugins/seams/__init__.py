"""One module a seam: its protocol (`PROTOCOL`), the value types it speaks, and its conformance checks
(`conformance(plugin)`, run by `mlife_shared.plugins.testing`)."""
