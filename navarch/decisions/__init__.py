"""Pure functions from state to a decision and its reason: the autoscalers today.

Nothing here touches Temporal, the network or the clock: the time is an argument, so every
decision is table-tested.

May import: `navarch.contracts`, `navarch.config`, `navarch.health`, the leaf modules.
"""
