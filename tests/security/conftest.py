"""The security suite (issue 13): the whole platform as processes (the session's `stack`, from tests/conftest.py,
shared with tests/gateway, tests/ui and tests/cli), DAM and MTT in process (their suites' fixtures, brought in
here once), and servers each test starts for itself."""

from tests.dam.conftest import dam, dam_db  # noqa: F401 - fixtures
from tests.mtt.conftest import mlflow_server, mtt, mtt_db, settings, start_runner  # noqa: F401 - fixtures
