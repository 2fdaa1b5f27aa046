"""The `navarch` command: `main` assembles the app from one module per command group, and
`output` holds the printing helpers they share.

May import anything in Navarch, the role packages (`navarch.workers`, ...) included.
"""
