"""The security suite (issue 13): the whole platform as processes (the session's `stack`, from tests/conftest.py,
shared with tests/gateway, tests/ui and tests/cli) plus servers each test starts for itself."""
