#!/usr/bin/env python3
"""Writes a C file defining `const char NAME[]` as the bytes of a file plus
a NUL, as a byte array: ISO C promises no string literal beyond 4095
bytes (-Woverlength-strings). Usage: embed.py NAME INPUT OUTPUT"""
import sys

name, src, dst = sys.argv[1:4]
data = open(src, "rb").read() + b"\0"
with open(dst, "w") as f:
    f.write(f"/* Generated from {src.split('/')[-1]} by scripts/embed.py: do not edit. */\n")
    f.write(f"extern const char {name}[];\nconst char {name}[] = {{\n")
    for i in range(0, len(data), 16):
        f.write("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    f.write("};\n")
