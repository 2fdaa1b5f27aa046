"""Run mypy over Navarch as it is installed: `workflows/` as `navarch.workflows`, etc.

mypy cannot follow setuptools' package-dir mapping in an editable install, so this builds
a throw-away tree of symlinks in the installed layout, checks it (strict, per pyproject),
then checks tests/ and tools/ against it with untyped test functions allowed, and prints
paths as they are in the repo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("workflows", "activities", "workers", "agent")


def build_tree(dest: Path) -> Path:
    pkg = dest / "navarch"
    pkg.mkdir()
    for item in (ROOT / "navarch").iterdir():
        if item.name != "__pycache__":
            (pkg / item.name).symlink_to(item)
    for role in ROLES:
        (pkg / role).symlink_to(ROOT / role)
    return pkg


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="navarch-mypy-") as tmp:
        pkg = build_tree(Path(tmp))
        env = dict(os.environ, MYPYPATH=os.pathsep.join([tmp, str(ROOT / "tests")]))
        mypy = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
        relaxed = ["--allow-untyped-defs", "--allow-incomplete-defs", "--allow-untyped-calls",
                   "--check-untyped-defs"]
        rc = 0
        others = [str(ROOT / d) for d in ("tests", "tools", "benchmarks")]
        for args in ([str(pkg)], [*relaxed, *others]):
            result = subprocess.run([*mypy, *args], cwd=ROOT, env=env, capture_output=True,
                                    text=True)
            output = result.stdout + result.stderr
            for role in ROLES:
                output = output.replace(f"{pkg}/{role}/", f"{role}/")
            print(output.replace(f"{pkg}/", "navarch/").replace(f"{ROOT}/", ""), end="")
            rc = rc or result.returncode
        return rc


if __name__ == "__main__":
    sys.exit(main())
