"""Conax Contego SMS Services (seed 000): batch, requests exchanged as files."""
