"""The README's copy-paste commands (issue #6): blocks marked ``readme-test: run`` are executed
as written, in a scratch directory; every ``cgm-ray`` command in the other marked blocks must
parse with the real command line, and every repository file it names must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from cgm_ray.cli import build_parser

from .conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- readme-test: (run|parse) -->\n```bash\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [body for k, body in BLOCK.findall((ROOT / "README.md").read_text()) if k == kind]


def commands(body: str) -> list[list[str]]:
    """The ``cgm-ray`` command lines of a block, as argv lists (comments dropped)."""
    out = []
    for line in body.splitlines():
        argv = shlex.split(line, comments=True)
        if argv and argv[0].endswith("cgm-ray"):
            out.append(argv[1:])
    return out


def test_every_bash_block_is_marked():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("```bash") == len(BLOCK.findall(readme)) >= 4


@pytest.mark.parametrize("argv", [argv for kind in ("run", "parse") for body in blocks(kind)
                                  for argv in commands(body)], ids=lambda argv: " ".join(argv[:2]))
def test_commands_parse_and_name_real_files(argv):
    args = build_parser().parse_args(argv)
    assert callable(args.func)
    for value in vars(args).values():
        if isinstance(value, str) and value.startswith(("configs/", "tests/data/")):
            assert (ROOT / value).is_file(), value


@pytest.mark.parametrize("body", blocks("run"), ids=lambda b: b.split()[1])
def test_run_blocks_work_as_written(body, tmp_path):
    """Run in a scratch copy of the layout the README assumes (``.venv``, ``configs``, ``tests/data``)."""
    work = tmp_path / "repo"
    (work / "tests").mkdir(parents=True)
    for name in (".venv", "configs"):
        (work / name).symlink_to(ROOT / name)
    (work / "tests" / "data").symlink_to(DATA)
    env = {**os.environ, "RAY_ADDRESS": ""}  # each command starts (and stops) its own Ray
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert list((work / "out").iterdir())
