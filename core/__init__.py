"""The base every app builds on, importing none of them: database tuning (``db``), hand-written
SQL helpers (``rawsql``), the roles, and the Web API's shared parts (errors, parsers, query
parameters, serializers, authentication and permission checks)."""
