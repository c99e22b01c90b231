"""The embedded demo project: `cserver demo` runs it with no setup (SQLite by default)."""
