"""`cserver init` and `cserver doctor`: the compose dev environment for a Django project."""
