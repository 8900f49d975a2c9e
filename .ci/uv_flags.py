"""Print uv flags that give `uv pip install` the package sources pip is configured with.

uv reads no pip configuration. `make setup` installs with uv (parallel, about 3x faster than pip here) and
passes it pip's configured indexes, find-links and constraints (from `pip config list`: files and PIP_*
variables), so that both take the same files from the same places; `--index-strategy unsafe-best-match`
makes uv pick the highest version over all indexes, as pip does. Standard library only.
"""

import shlex
import subprocess
import sys

FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint"}


def pip_settings(pip: str) -> list[tuple[str, str]]:
    out = subprocess.run([pip, "config", "list"], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in FLAGS and value:
            for item in shlex.split(value.strip().strip("'\"")):
                if (name, item) not in found:
                    found.append((name, item))
    return found


def main() -> None:
    pip = sys.argv[1] if len(sys.argv) > 1 else "pip"
    flags = ["--index-strategy", "unsafe-best-match"]
    for name, item in pip_settings(pip):
        flags += [FLAGS[name], item]
    print(shlex.join(flags))


if __name__ == "__main__":
    main()
