"""`cserver dev`: runcserver and the declared side processes, together, without Docker."""
