"""The CEL extension is loaded without the `cel` package's REPL, and coexists with a plain
`import cel` in either order (a pyo3 module cannot be loaded twice)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "print(cel.compile('1 + 1').execute({}), compile_expression('2 > 1').execute({}))"


@pytest.mark.parametrize("first", ["import cel", "from navarch.health.cel_engine import compile_expression"])
def test_either_import_order_works(first):
    other = ("from navarch.health.cel_engine import compile_expression" if first == "import cel"
             else "import cel")
    result = subprocess.run([sys.executable, "-c", f"{first}\n{other}\n{CHECK}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 True"


def test_the_agent_does_not_load_the_cel_repl_or_yaml():
    code = ("import sys, navarch.agent.activities, navarch.agent.fake_backend; "
            "print(sorted(m for m in ('typer', 'prompt_toolkit', 'pygments', 'yaml', 'rich') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
