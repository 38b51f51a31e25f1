"""Reading the plots the API draws the way a person looks at them: an SVG's texts (title, axis labels,
legend entries, tick labels) and its data series (the groups whose id starts with `series-`), and a
PNG's size and pixels."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from PIL import Image, ImageStat

NS = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Svg:
    root: ET.Element

    @classmethod
    def parse(cls, content: bytes) -> Svg:
        root = ET.fromstring(content)
        assert root.tag == f"{NS}svg", root.tag
        return cls(root)

    def ids(self) -> list[str]:
        return [element.get("id", "") for element in self.root.iter() if element.get("id")]

    def series(self) -> list[str]:
        """The ids of the data series, in drawing order."""
        return [name for name in self.ids() if name.startswith("series-")]

    def element(self, name: str) -> ET.Element:
        found = [element for element in self.root.iter() if element.get("id") == name]
        assert len(found) == 1, f"{len(found)} elements with id {name!r}; ids: {self.ids()}"
        return found[0]

    def texts(self, within: str | None = None) -> list[str]:
        """Every <text> element's words (under the element with id `within`, if given)."""
        top = self.root if within is None else self.element(within)
        return ["".join(text.itertext()).strip() for text in top.iter(f"{NS}text")]

    def markers(self, series: str) -> int:
        """The points of a series drawn with a marker (one <use> of the marker's shape per point)."""
        return sum(1 for _ in self.element(series).iter(f"{NS}use"))


def png(content: bytes) -> tuple[tuple[int, int], float]:
    """(width, height) and the variance of the pixels' gray levels (0 for a blank image)."""
    assert content.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(content)) as image:
        image.load()
        size = image.size
        variance = ImageStat.Stat(image.convert("L")).var[0]
    return size, variance
