"""A provider defined only inside the test suite: one package with an adapter, installed for a
test by one line in ``PROVISIONING_ADAPTERS`` (``override_settings``), proving that an adapter
alone brings its run types, utilities, Web API route, simulator and demo data."""
