"""Support shared by the test suite (tests/) and the benchmarks (bench/).

Real server processes on free ports, the process table, throwaway PostgreSQL clusters and
the load client. Not installed with cserver: tests and bench put the checkout on sys.path.
"""
