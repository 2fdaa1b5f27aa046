"""Navarch: a GPU fleet manager on Temporal.

The `navarch` package is the shared, dependency-light core: models, config loading, health
policy, the Xid dictionary, kernel-log parsing, ids and the CLI. The role packages
(`navarch.workflows`, `navarch.activities`, `navarch.workers`, `navarch.agent`) are installed
under this namespace from the top-level folders of the repository.
"""

__version__ = "0.1.0"
