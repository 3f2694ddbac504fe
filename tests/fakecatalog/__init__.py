"""A loopback stand-in for Foundry Local's public model catalog (see server.py)."""

from tests.fakecatalog.server import FakeCatalog, catalog_record, closed_port_url, place_cached

__all__ = ["FakeCatalog", "catalog_record", "closed_port_url", "place_cached"]
