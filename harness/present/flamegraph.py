"""Collapsed stacks → a self-contained SVG flame graph (root at the bottom, width = samples).

py-spy writes either an SVG or the collapsed stacks, not both from one recording; the harness
needs the stacks (for the self-time summary), so it draws the SVG from them. Hovering a frame
shows its name, samples and share (an SVG <title>); no script, so it opens anywhere.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape as _escape

WIDTH = 1200.0
ROW = 17.0
PAD = 10.0
HEADER = 28.0
CHAR_PX = 6.6  # average glyph width at font-size 11, to decide how much of a name fits


@dataclass
class Node:
    name: str
    samples: int = 0
    children: dict[str, Node] = field(default_factory=dict)


# Characters XML 1.0 forbids (control characters, lone surrogates): a frame name from a sampled
# process may carry them, and one would make the whole SVG unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """`text` for an SVG element: XML-escaped, with the characters XML cannot hold shown as '?'."""
    return _escape(_NOT_XML.sub("?", text))


def build_tree(stacks: list[tuple[list[str], int]]) -> Node:
    root = Node("all")
    for frames, n in stacks:
        node = root
        node.samples += n
        for frame in frames:
            node = node.children.setdefault(frame, Node(frame))
            node.samples += n
    return root


def depth(node: Node) -> int:
    return 1 + max((depth(c) for c in node.children.values()), default=0)


def _colour(name: str) -> str:
    """Warm colours, stable per package so one library reads as one hue band."""
    package = name.rpartition("(")[2].split("/", 1)[0]
    h = zlib.crc32(package.encode())
    return f"rgb({205 + h % 50},{90 + (h >> 8) % 120},{40 + (h >> 16) % 50})"


def render(stacks: list[tuple[list[str], int]], title: str = "") -> str:
    """The SVG text for `stacks` ([(frames root first, samples)])."""
    root = build_tree(stacks)
    rows = depth(root)
    height = HEADER + rows * ROW + PAD
    scale = (WIDTH - 2 * PAD) / max(root.samples, 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height:.0f}" '
           f'font-family="monospace" font-size="11">',
           '<rect width="100%" height="100%" fill="#f8f8f8"/>',
           f'<text x="{PAD}" y="18" font-size="13">{escape(title)} ({root.samples} samples; '
           'width = share of samples, hover for figures)</text>']

    def draw(node: Node, x: float, level: int) -> None:
        w = node.samples * scale
        if w < 0.3:  # narrower than a pixel's third: invisible anyway
            return
        y = height - PAD - (level + 1) * ROW
        share = node.samples / max(root.samples, 1)
        label = node.name if level else f"all ({root.samples} samples)"
        fits = int((w - 4) / CHAR_PX)
        text = label if len(label) <= fits else (label[:fits - 2] + ".." if fits > 3 else "")
        out.append(f'<g><title>{escape(label)}: {node.samples} samples, {share:.1%}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{ROW - 1:.0f}" '
                   f'fill="{_colour(node.name)}" rx="2"/>'
                   + (f'<text x="{x + 2:.1f}" y="{y + ROW - 5:.1f}">{escape(text)}</text>' if text else "")
                   + "</g>")
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, cx, level + 1)
            cx += child.samples * scale

    draw(root, PAD, 0)
    out.append("</svg>")
    return "\n".join(out)
