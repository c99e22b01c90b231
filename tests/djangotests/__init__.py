"""Django's own tests of the runserver command, from the installed release's sdist, run
against runcserver's Command (see run.py for what runs and what is excluded, and why)."""
