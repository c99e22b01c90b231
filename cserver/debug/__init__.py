"""The debugger (debugpy) for a whole run: one port across reloads, in every mode.

address.py   what --debugpy / CSERVER_DEBUGPY accept: [HOST:]PORT, or a boolean
session.py   a server generation's side: debugpy listening, its adapter stopped with it
proxy.py     the supervisor's side: the user's port, bound once, forwarded to the adapter
             of the generation that serves now
"""
