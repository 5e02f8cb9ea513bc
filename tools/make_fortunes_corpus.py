#!/usr/bin/python3
"""One text corpus from Debian's `fortunes` package, for `tapegrad fit --data text:FILE`.

    /usr/bin/python3 tools/make_fortunes_corpus.py [OUT] [--dir DIR] [--max-chars N]

Reads every fortune file of DIR (default /usr/share/games/fortunes): the plain files, not
the `.dat` indexes nor the `.u8` links to the same files, nor subfolders (Debian keeps the
offensive ones apart, in `fortunes-off`). A file is fortunes separated by lines holding
only '%'; the separators are dropped, each fortune keeps its lines (trailing blanks
stripped, blank lines at its ends dropped) and ends with one blank line. The fortunes of
every file are shuffled once with a fixed seed (Python's random.Random(20)), so the last
10% of the corpus, the command's validation text, draws from every file rather than from
the alphabetically last ones. With --max-chars the corpus stops at the last whole fortune
within N characters. Written as UTF-8 (the package's files are UTF-8). Prints the sizes.
"""
import argparse
import os
import random


def read_fortunes(folder):
    fortunes = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".dat") or name.endswith(".u8") or os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = []
        for line in text.split("\n") + ["%"]:
            if line == "%":
                body = "\n".join(lines).strip("\n")
                if body.strip():
                    fortunes.append(body)
                lines = []
            else:
                lines.append(line.rstrip())
    return fortunes


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="fortunes.txt")
    p.add_argument("--dir", default="/usr/share/games/fortunes")
    p.add_argument("--max-chars", type=int, default=0)
    a = p.parse_args()
    fortunes = read_fortunes(a.dir)
    random.Random(20).shuffle(fortunes)
    parts, n = [], 0
    for f in fortunes:
        piece = f + "\n\n"
        if a.max_chars and n + len(piece) > a.max_chars:
            break
        parts.append(piece)
        n += len(piece)
    text = "".join(parts)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{a.out}: {len(parts)} fortunes, {len(text)} characters, {len(set(text))} distinct, "
          f"{len(text.encode('utf-8'))} bytes")


if __name__ == "__main__":
    main()
