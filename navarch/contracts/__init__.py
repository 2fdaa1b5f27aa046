"""What crosses a Temporal boundary, and nothing else.

Names that are stable API (`names`: workflow ids, task queues, search attributes), and per
workflow (`node`, `pool`, `diagnostics`) and per activity group (`cloud`, `agent`, `ssh`,
`notifier`, `autoscale`, `fleet`) the models of their inputs, results and signals, with the
pool spec that workflows receive (`spec`). Models stored in history are lenient: unknown
fields are ignored and every new field has a default.

May import: `navarch.config` and `navarch.health` (for their value types), the leaf modules
at the top of `navarch/`. Never the CLI, the simulator, decisions or Temporal plumbing.
"""
