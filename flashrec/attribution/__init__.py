"""Live attribution: clicks, carts and purchases credited to the list that was served.

A long-running process of the stack (``python -m flashrec.attribution run``); see
``worker`` for how it keeps exact, exactly-once counts across restarts.
"""
