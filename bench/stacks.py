"""Summarise a py-spy recording in `--format raw` (collapsed stacks): where the samples are.

    python bench/stacks.py daemon.raw [--top 25]

Prints the share of samples per thread root, per innermost frame (self) and per frame anywhere
on the stack (inclusive).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    roots: Counter[str] = Counter()
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames, samples = stack.split(";"), int(count)
        total += samples
        roots[frames[0]] += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            anywhere[frame] += samples
    for title, counter in (("threads", roots), ("self", own), ("inclusive", anywhere)):
        print(f"--- {title} ({total} samples)")
        for frame, samples in counter.most_common(args.top):
            print(f"{samples / total:6.1%}  {frame[:140]}")


if __name__ == "__main__":
    main()
