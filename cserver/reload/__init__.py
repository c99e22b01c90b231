"""The socket-keeping autoreloader: everything between a saved file and a new generation.

supervisor.py  the state machine of the process that holds the socket (RUNNING, ERROR, STOPPING)
spawn.py       how a generation starts: forked from the supervisor or the warm process, or exec'd
warm.py        the supervisor's handle on the warm process; zygote.py is that process itself
filewatch.py   which files are watched and how a change is classified (code or restartless)
errors.py      a failed generation's last words, served as the 500 page until a fix

Nothing here is imported by the server package: a generation is an ordinary server that
the supervisor started (ARCHITECTURE.md draws the layers).
"""
