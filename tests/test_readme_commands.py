"""Every `python -m wavegan_dist...` command in the README's code blocks parses as written:
each flag exists for its command and takes the value given, and the training commands'
flags make a valid Config. (What the commands then do is tested by the files for each
command; this keeps the README from drifting away from the flags.)"""

import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # one process per command module, each importing TensorFlow

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Commands whose flags build a training Config (flags.config_from_flags).
CONFIG_COMMANDS = {"wavegan_dist.train", "wavegan_dist.prepare", "wavegan_dist.models"}
CHECK = """
import importlib, json, sys
from absl import flags
module, commands = sys.argv[1], json.loads(sys.argv[2])
main = {{"wavegan_dist.models": "wavegan_dist.models.__main__",
        "wavegan_dist.bench": "wavegan_dist.bench.__main__"}}.get(module, module)
flag_values = getattr(importlib.import_module(main), "FLAGS", flags.FLAGS)
for argv in commands:
    flag_values.unparse_flags()
    try:
        flag_values([module] + argv)
        if module in {config_commands}:
            from wavegan_dist.flags import config_from_flags
            if flag_values.model_dir.startswith("gs://"):  # no network here to read it
                flag_values.model_dir = ""
            config_from_flags()
    except Exception as err:
        print(f"{{module}} {{' '.join(argv)}}: {{type(err).__name__}}: {{err}}")
"""


def readme_commands(text: str) -> list[tuple[str, list[str]]]:
    """(module, arguments) of every `python -m wavegan_dist...` line in fenced code blocks,
    continuation lines joined, a leading `$ ` prompt and trailing comments dropped."""
    found, in_block, lines = [], False, []
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            lines.append(line)
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        match = re.search(r"python -m (wavegan_dist(?:\.\w+)*)(.*)", line)
        if not match:
            continue
        words = shlex.split(match.group(2), comments=True)
        for i, word in enumerate(words):  # stop at pipes, redirections and chained commands
            if word in ("|", "&&", ";", ">", "2>&1") or word.startswith((">", "2>")):
                words = words[:i]
                break
        module = (
            "wavegan_dist.bench"
            if match.group(1).startswith("wavegan_dist.bench")
            else match.group(1)
        )
        found.append((module, words))
    return found


def test_the_readme_extraction_sees_prompts_continuations_and_comments():
    text = (
        "```bash\npython -m wavegan_dist.train --a=1 \\\n    --b=2   # note\n```\n"
        "prose python -m wavegan_dist.generate --not_a_block\n"
        "```\n$ python -m wavegan_dist.bench learn --json 2>&1 | tail -1\n```\n"
    )
    assert readme_commands(text) == [
        ("wavegan_dist.train", ["--a=1", "--b=2"]),
        ("wavegan_dist.bench", ["learn", "--json"]),
    ]


def test_every_readme_command_parses_as_written():
    commands = readme_commands((ROOT / "README.md").read_text())
    by_module: dict[str, list[list[str]]] = {}
    for module, argv in commands:
        by_module.setdefault(module, []).append(argv)
    assert {
        "wavegan_dist.train",
        "wavegan_dist.generate",
        "wavegan_dist.evaluate",
        "wavegan_dist.bench",
        "wavegan_dist.prepare",
    } <= set(by_module)
    problems = []
    for module, argvs in sorted(by_module.items()):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHECK.format(config_commands=sorted(CONFIG_COMMANDS)),
                module,
                json.dumps(argvs),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        problems += out.stdout.splitlines()
    assert problems == [], "\n".join(problems)
    assert len(commands) > 30
