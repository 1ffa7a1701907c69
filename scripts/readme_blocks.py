"""Prints a code block of README.md, so that scripts run what the README says rather than a copy of it.

  readme_blocks.py README.md run      the first ```sh block under "## The two commands" (the run command)
  readme_blocks.py README.md test     the second one (the test command)
  readme_blocks.py README.md client   the first ```python block under "## First call"
  readme_blocks.py README.md grpcurl  the first ```sh block under "## First call" (the grpcurl call)
"""

import re
import sys


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    rest = text[start + len(heading):]
    end = re.search(r"^## ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def blocks(text: str, lang: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"```" + lang + r"\n(.*?)```", text, flags=re.S)]


def main() -> None:
    text = open(sys.argv[1], encoding="utf-8").read()
    which = sys.argv[2]
    if which in ("run", "test"):
        found = blocks(section(text, "## The two commands"), "sh")
        print(found[0 if which == "run" else 1])
    elif which == "client":
        print(blocks(section(text, "## First call"), "python")[0])
    elif which == "grpcurl":
        print(blocks(section(text, "## First call"), "sh")[0])
    else:
        sys.exit(f"unknown block {which!r}")


if __name__ == "__main__":
    main()
