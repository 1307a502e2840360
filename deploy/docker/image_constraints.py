"""Constraints for installing alignstream into an image that already has an environment (the
official vLLM image): every package the image has stays at the image's version, the rest come
from deploy/constraints.txt. A requirement of alignstream that the image's version does not meet
fails the build, loudly, instead of pip silently moving vLLM's dependencies.

    python3 image_constraints.py deploy/constraints.txt > /tmp/constraints.txt
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock: Path) -> None:
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()
                 if d.metadata["Name"]}  # fmt: skip
    for line in lock.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        kept = installed.get(canonical(name))
        print(f"{name}=={kept or version}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
