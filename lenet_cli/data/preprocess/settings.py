"""What preprocessing promises: the constants of each dataset's recipe, the options, and the blank-image error."""

from __future__ import annotations

from dataclasses import dataclass

from lenet_cli.core.config import IMAGE_SIZE
from lenet_cli.core.config import INVERT_MODES as INVERT_CHOICES
from lenet_cli.core.config import PREPROCESS_MODES as MODES
from lenet_cli.core.errors import BadValue, DataError
from lenet_cli.data.images import (
    quote_name,
)

SIZE = IMAGE_SIZE
"""Side of the network's input, in pixels."""


MNIST_BOX = 20
"""MNIST digits were scaled to fit a 20x20 box inside the 28x28 field."""


MNIST_CENTRE = 14.0
"""Where MNIST puts the centre of mass, in pixel indices (t10k mean: 13.99, 14.01)."""


MIN_CONTRAST = 0.1
"""Content this far from the background (10 % of full scale) is found pixel by pixel; fainter content is
looked for in the smoothed picture, against the noise of its background (:data:`VISIBLE_CONTRAST`, :data:`SIGNIFICANCE`)."""


VISIBLE_CONTRAST = 0.025
"""Content whose strongest part differs from the background by less than this (2.5 % of full scale, about
6 grey levels of 8 bits) is taken for a uniform picture: 8-bit banding, paper grain and compression ripple
reach 1-2 %, and a person barely sees less on a screen."""


SIGNIFICANCE = 6.0
"""Faint content must stand this many noise deviations above the background, the deviation measured on the
border of the smoothed picture; noise alone seldom passes 4."""


WORK_MAX_SIDE = 1024
"""Larger images are first reduced to this many pixels on the longest side (speed only)."""


MIN_EXTENT = 0.02
"""Content spans at least 2 % of the image's longest side (and 4 pixels); anything smaller is a speck."""


MIN_EXTENT_PIXELS = 4


NEAR_PIECE_FRACTION = 0.005
"""A piece beside the largest one counts when it has at least 0.5 % of its area."""


PAPER_MARGIN = 0.25
"""A digit that touches its picture's edge gets a margin of its paper this wide (a fraction of the longest side).

Chosen on 8x8 block scans rendered from the MNIST validation split (the
UCI digits' recipe, digits edge to edge, drawn at 80x80; how, in
bench/RESULTS.md): the built-in model read 95.6 % of 1,500, 97.7 % with
this margin at the ring's median (97.9 % at its lower quartile), 98.0 %
with real white paper round them; margins of 0.10 and 0.15 gave 97.4 and
97.7 %.
"""


EDGE_INK_LEVEL = 0.6
"""A border pixel is ink when it is this far from the ring's paper level towards the ink's (its 99th percentile).

Low enough to see an enlarged block scan's grey edge ink (198 of 200 block
scans get their margin), high enough that a soft shadow over the border is
not ink (none of 200 shadow photos do). At 0.75, 186 of 200 block scans did.
"""


EDGE_INK_FRACTION = 0.01
"""A digit touches the picture's edge when more than 1 % of the border ring is ink (:data:`EDGE_INK_LEVEL`).

A ring pixel must also stand :data:`EDGE_INK_DEVIATIONS` of the ring's noise
above its paper, or a picture of noise alone would count its own grain as ink.
"""


EDGE_INK_DEVIATIONS = 4.0
"""How many deviations of the border ring's noise (from neighbouring pixels' differences) a ring pixel must stand
above the paper to count as ink: two tests of refusals failed while a ring of grain could pass for a cut-off digit.
"""


STROKE_RANGE = (1.6, 2.2)
"""Stroke widths (2 x area / outline, in pixels of the 20x20 box) left as they are: MNIST test digits' interquartile range (1.57-2.19)."""


FASHION_TRIM = 0.05
"""Fashion-MNIST trimmed edges within 5 % of the corner colour."""


FASHION_PEAK_QUANTILE = 0.99
"""The quantile of an article's content that :func:`match_fashion_darkness` maps to full darkness.

Every Fashion-MNIST training image reaches full darkness (its darkest pixel
is 0.996-1.0 in all 60,000), so another camera's tone curve or a white shirt
on white is stretched until the 99th percentile of its content is 1.0. A
quantile rather than the maximum, so that a few sharpened or noisy pixels
cannot hold the stretch back: 1 % of the content may clip."""

FASHION_CONTENT_LEVEL = 0.02
"""Pixels above this darkness are the article's when its percentile is taken (the rest is background)."""


@dataclass(frozen=True)
class PreprocessOptions:
    """How to turn an image into network input.

    Attributes:
        mode: ``mnist`` (digit: crop, 20x20 box, centre of mass), ``fashion``
            (article: trim, longest edge 28, centred) or ``none`` (grayscale
            and resize only).
        invert: ``auto`` inverts when the background is light (dark ink on
            paper, a product on white); ``always`` treats the image as dark
            content on a light background; ``never`` as light on dark.
    """

    mode: str = "mnist"
    invert: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadValue("preprocess", f"unknown preprocessing mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.invert not in INVERT_CHOICES:
            raise BadValue(
                "invert", f"unknown invert setting {self.invert!r}; choose one of: {', '.join(INVERT_CHOICES)}"
            )


class BlankImageError(DataError):
    """No content was found: the image is uniform (contrast below :data:`VISIBLE_CONTRAST`), noise only, or specks."""


def source_label(source, name: str | None) -> str:
    if name is not None:
        return quote_name(name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return quote_name("<stdin>")
    return quote_name(source)


def wrong_polarity_error(name: str | None, invert: str) -> BlankImageError:
    """No content with ``invert`` as given, but some with the opposite: say the cause, not the symptom (noise, specks)."""
    where = f" in {quote_name(name)}" if name else ""
    seen = "dark content on a light background" if invert == "never" else "light content on a dark background"
    return BlankImageError(
        f"no content found{where} with invert {invert!r}: it is {seen}, and inverting it finds content; "
        f"set invert to 'auto', which detects this"
    )


def blank_error(name: str | None, why: str) -> BlankImageError:
    where = f" in {quote_name(name)}" if name else ""
    return BlankImageError(
        f"no content found{where}: {why} (a uniform or very faint image has nothing to classify; "
        "check the file, or raise its contrast)"
    )
