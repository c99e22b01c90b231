"""`cserver probe`: load a running server and show latency, workers and database sessions."""

from cserver.probe.runner import DEFAULT_URL, ProbeConnectError, ProbeOptions, run_probe

__all__ = ["DEFAULT_URL", "ProbeConnectError", "ProbeOptions", "run_probe"]
