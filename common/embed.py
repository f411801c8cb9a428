#!/usr/bin/env python3
"""Writes a C file defining `const char NAME[]` with the bytes of a file,
so a binary carries its documents (openapi.json) without a runtime path.
usage: embed.py INPUT OUTPUT NAME"""
import sys

src, dst, name = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as out:
    out.write("/* generated from %s by embed.py; do not edit */\n" % src.split("/")[-1])
    out.write("#include <stddef.h>\n")
    out.write("const char %s[] = {\n" % name)
    for i in range(0, len(data), 16):
        # Bytes above 127 (UTF-8 text) are cast: char may be signed.
        out.write("    " + ", ".join(str(b) if b < 128 else "(char)%d" % b
                                     for b in data[i:i + 16]) + ",\n")
    out.write("    0};\n")
    out.write("const size_t %s_bytes = %d;\n" % (name, len(data)))
