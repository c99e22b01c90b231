"""cserver: the concurrent development server for Django."""

__version__ = "0.1.0"
