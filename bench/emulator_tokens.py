"""The emulator's tokenizer: how long loading a vocabulary takes, and counting once it is loaded.

    .venv/bin/python bench/emulator_tokens.py [--encoding o200k_base] [--texts 2000]

Run as its own process, so the first load is a cold one (the vocabulary is read, checked and
parsed); the second call must be the same object at no cost. Then ``--texts`` distinct short
prompts are counted (what the emulator does for each request's text). This was once a timed unit
test (under 1 s for the counts); the unit test now checks only that the tokenizer is loaded once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.emulator.tokens import ENCODINGS, tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoding", choices=ENCODINGS, default="o200k_base")
    parser.add_argument("--texts", type=int, default=2000)
    args = parser.parse_args()

    start = time.perf_counter()
    tok = tokenizer(args.encoding)
    first = time.perf_counter() - start

    start = time.perf_counter()
    again = tokenizer(args.encoding)
    second = time.perf_counter() - start
    assert again is tok, "the tokenizer was loaded twice"

    start = time.perf_counter()
    for i in range(args.texts):
        tok.count(f"Describe image {i}.")
    counting = time.perf_counter() - start

    print(f"encoding {args.encoding}")
    print(f"first load (cold, in this process): {first:.3f} s")
    print(f"second call (already loaded):       {second * 1e6:.1f} us")
    print(f"counting {args.texts} distinct prompts:  {counting:.3f} s ({counting / args.texts * 1e6:.1f} us each)")


if __name__ == "__main__":
    main()
