"""What Navarch knows about GPU health: events and verdicts (`events`), health policies and
their CEL engine (`policy`, `cel_engine`), the Xid dictionary and its data (`xid`,
`data/`), the kernel-log parser (`kernel_log`) and the built-in policy files (`policies/`).

May import: the leaf modules at the top of `navarch/` only.
"""
