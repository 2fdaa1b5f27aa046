"""Navarch: a GPU fleet manager on Temporal.

The `navarch` package is the shared, dependency-light core: models, config loading, health
policy, the Xid dictionary, kernel-log parsing, ids and the CLI. The role packages
(`navarch.workflows`, `navarch.activities`, `navarch.workers`, `navarch.agent`) are installed
under this namespace from the top-level folders of the repository.
"""

__version__ = "0.1.0"


def _map_role_folders_in_source_checkout() -> None:
    """In a source checkout, let `navarch.workflows` etc. import from the top-level folders.

    Installed (wheel or editable), setuptools' package-dir mapping does this; run straight
    from the repository root, nothing would. Only a checkout (pyproject.toml beside the role
    folders) is added to the search path, never site-packages.
    """
    import os.path

    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        checkout = os.path.isfile(os.path.join(root, "pyproject.toml")) and os.path.isfile(
            os.path.join(root, "workflows", "__init__.py")
        )
    except Exception:  # e.g. re-imported inside Temporal's workflow sandbox, which forbids I/O
        return
    if checkout and root not in __path__:
        __path__.append(root)


_map_role_folders_in_source_checkout()
