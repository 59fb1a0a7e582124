"""Irdeto (seed 001): real-time, with reset runs."""
