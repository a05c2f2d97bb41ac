"""Bytecode for our packages, as an installed package has it, for benchmark children.

Where PYTHONDONTWRITEBYTECODE is set (as in some sandboxes and CI images), each of our
processes would compile every module of an editable install anew at start-up, which the
rivals, installed with their bytecode, never do. `compile_trees` writes the bytecode once into
a scratch folder; `bytecode_env` is the environment that makes a child use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["PACKAGES", "bytecode_env", "compile_trees"]

PACKAGES = ("crawler", "storage", "workers")


def compile_trees(trees: list[Path], prefix: str | os.PathLike[str]) -> None:
    """Compile our packages in each source tree into `prefix` (a PYTHONPYCACHEPREFIX)."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(prefix))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for tree in trees:
        packages = [str(tree / name) for name in PACKAGES]
        subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], env=env, check=True)


def bytecode_env(
    prefix: str | os.PathLike[str], base: dict[str, str] | None = None
) -> dict[str, str]:
    """`base` (default: this process's environment) with the compiled bytecode in use."""
    env = dict(os.environ if base is None else base, PYTHONPYCACHEPREFIX=str(prefix))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
