"""Conax Contego Web Services (seed 000): real-time SOAP, with reset runs."""
