from tests.integration.bus_fixtures import js, nc

__all__ = ["js", "nc"]
