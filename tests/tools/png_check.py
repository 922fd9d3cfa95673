#!/usr/bin/python3
"""Checks that a PNG screenshot is not blank: in the band of rows [top, bottom)
at least `min_fraction` of the pixels are saturated colour (the timeline's
slices), and the whole image has at least `min_colours` distinct colours.
Standard library only (zlib), so it runs wherever CTest runs.

    png_check.py FILE TOP BOTTOM MIN_FRACTION MIN_COLOURS
"""
import struct
import sys
import zlib


def pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    at, idat, width, height, ctype, depth = 8, b"", 0, 0, 0, 0
    while at < len(data):
        n, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + n]
        at += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
    if depth != 8 or ctype not in (2, 6):
        sys.exit(f"{path}: expected 8-bit RGB or RGBA, got depth {depth} type {ctype}")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, at = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    path, top, bottom, min_fraction, min_colours = sys.argv[1], int(sys.argv[2]), int(
        sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    width, height, bpp, rows = pixels(path)
    colours, coloured, band = set(), 0, 0
    for y, row in enumerate(rows):
        for x in range(0, width * bpp, bpp):
            r, g, b = row[x], row[x + 1], row[x + 2]
            colours.add((r, g, b))
            if top <= y < bottom:
                band += 1
                if max(r, g, b) - min(r, g, b) > 40:
                    coloured += 1
    fraction = coloured / band if band else 0
    print(f"{path}: {width}x{height}, {len(colours)} colours, {fraction:.1%} of rows "
          f"{top}-{bottom} coloured")
    if fraction < min_fraction or len(colours) < min_colours:
        sys.exit("the screenshot looks blank")


main()
