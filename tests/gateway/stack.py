"""The whole platform as processes, for the gateway, browser, CLI and security suites: it lives in
`tests.support.stack` (import it from there); these names stay importable from here."""

from tests.support.stack import (
                                 ADMIN_PASSWORD,
                                 ADMIN_TOKEN,
                                 METRICS_TOKEN,
                                 PASSWORD,
                                 ROLES,
                                 SECRET,
                                 SERVICES,
                                 Stack,
                                 start_stack,
                                 stop_stack,
)

__all__ = ["ADMIN_PASSWORD", "ADMIN_TOKEN", "METRICS_TOKEN", "PASSWORD", "ROLES", "SECRET", "SERVICES", "Stack",
           "start_stack", "stop_stack"]
