from tests.gateway.conftest import stack  # noqa: F401 - the whole platform as processes
