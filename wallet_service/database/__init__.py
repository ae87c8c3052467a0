"""The service's database backend: django_prometheus's PostgreSQL backend with cheaper per-statement counting."""
