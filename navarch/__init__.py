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
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "workflows" / "__init__.py").is_file():
        __path__.append(str(root))


_map_role_folders_in_source_checkout()
