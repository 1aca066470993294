import gateway.app  # noqa: F401 - registers the gateway's tables on the shared metadata
from mlife_shared.migrations import run_env

run_env()
