"""Turn a decoded image into the exact 28x28 input the network was trained on.

A LeNet trained on MNIST has only ever seen white strokes on a black
background, cropped to their bounding box, scaled to fit 20x20 and placed so
that their centre of mass sits at pixel (14, 14); Fashion-MNIST articles are
light on black, trimmed, scaled so the longest edge is 28 and centred. A
photo of a digit on paper looks nothing like that, so ``lenet predict``
re-creates each dataset's own recipe here (numpy and Pillow only, so predict
runs without TensorFlow):

* ``mnist``: find the ink (give a digit cropped to its edges a margin of
  its paper, remove uneven lighting, Otsu threshold, drop specks), crop,
  fit into 20x20 keeping the aspect ratio, paste into 28x28 by centre of
  mass.
* ``fashion``: find the article, trim, fit the longest edge to 28, sharpen
  lightly, centre, and stretch its darkness linearly to full scale, as every
  Fashion-MNIST article reaches (another camera's tone curve, a white shirt
  on white).
* ``none``: grayscale, resize to 28x28, optionally invert.

Values follow the training convention ``pixel / 255``: float32 in ``[0, 1]``,
content bright on a dark background. A 28x28 image that already has the
dataset's layout (dark background; for ``mnist`` content within 20x20 with
its centre of mass within a pixel of (14, 14), for ``fashion`` content
spanning at least 26 pixels) is returned as it is, so exported dataset
samples and saved inputs predict exactly as in ``lenet evaluate``.

**Faint and blank images.** Content fainter than :data:`MIN_CONTRAST` is
looked for in the averaged picture, against the noise of its background,
so a faint but visible picture is answered. An image in which no content
can be found (uniform: contrast below :data:`VISIBLE_CONTRAST`; noise only;
specks) is never turned into a confident-looking input: :func:`preprocess` raises
:class:`BlankImageError`, a :class:`~lenet_cli.core.errors.LenetError` whose
message starts with ``no content found``. :func:`preprocess_batch` can
instead record it per image (``PreprocessResult.blank``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lenet_cli.core.config import INVERT_MODES as INVERT_CHOICES
from lenet_cli.core.config import PREPROCESS_MODES as MODES
from lenet_cli.core.errors import DataError, LenetError
from lenet_cli.data.images import (
    ImageSource,
    read_image,
)
from lenet_cli.data.preprocess.content import already_in_dataset_format, decide_invert, ink_at_working_size
from lenet_cli.data.preprocess.image_ops import as_luminance
from lenet_cli.data.preprocess.recipes import preprocess_fashion, preprocess_mnist, preprocess_none
from lenet_cli.data.preprocess.settings import (
    MIN_CONTRAST,
    SIZE,
    VISIBLE_CONTRAST,
    BlankImageError,
    PreprocessOptions,
    blank_error,
    source_label,
    wrong_polarity_error,
)
from lenet_cli.store.atomic import write_bytes_atomic

__all__ = [
    "MODES",
    "INVERT_CHOICES",
    "SIZE",
    "MIN_CONTRAST",
    "VISIBLE_CONTRAST",
    "BlankImageError",
    "PreprocessOptions",
    "PreprocessResult",
    "preprocess",
    "load_and_preprocess",
    "preprocess_batch",
    "decide_invert",
    "to_uint8",
    "save_preprocessed_png",
]


@dataclass(frozen=True)
class PreprocessResult:
    """One input of :func:`preprocess_batch`: the 28x28 array, or the error that stopped it.

    Attributes:
        name: The source as shown in messages (quoted path, or ``'<stdin>'``).
        array: ``(28, 28)`` float32 in ``[0, 1]``, or ``None`` when ``error`` is set.
        error: The :class:`LenetError` (possibly a :class:`BlankImageError`), or ``None``.
    """

    name: str
    array: np.ndarray | None = None
    error: LenetError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def blank(self) -> bool:
        return isinstance(self.error, BlankImageError)


def preprocess(image, options: PreprocessOptions | None = None, *, name: str | None = None) -> np.ndarray:
    """Turn one decoded image into network input.

    Args:
        image: A Pillow image (any mode), or a numpy array: 2-D luminance
            (``uint8`` 0-255, ``uint16`` 0-65535, ``bool``, or float in
            ``[0, 1]``), or ``(H, W, 3|4)`` ``uint8`` RGB(A).
        options: Mode and inversion; defaults to ``PreprocessOptions()``.
        name: How to call the image in a blank-image message (a path or
            label; it is quoted and escaped for display).

    Returns:
        A float32 array of shape ``(28, 28)`` with values in ``[0, 1]``,
        content bright on black.

    Raises:
        BlankImageError: No content was found.
        DataError: ``image`` is an array of a shape or dtype that is not an image.
    """
    options = options or PreprocessOptions()
    luminance = as_luminance(image)
    if luminance.size == 0:
        raise blank_error(name, "it has no pixels")
    try:
        return _preprocess_luminance(luminance, options, name)
    except BlankImageError as exc:
        if options.invert == "auto":
            raise
        other = "never" if options.invert == "always" else "always"
        try:
            _preprocess_luminance(luminance, dataclasses.replace(options, invert=other), name)
        except BlankImageError:
            raise exc from None
        raise wrong_polarity_error(name, options.invert) from None


def _preprocess_luminance(luminance: np.ndarray, options: PreprocessOptions, name: str | None) -> np.ndarray:
    """:func:`preprocess` for a non-empty luminance image, with ``options.invert`` taken as given."""
    if options.mode == "none":
        return preprocess_none(luminance, options.invert, name)
    invert = decide_invert(luminance, options.invert)
    if luminance.shape == (SIZE, SIZE) and not invert:
        ready = already_in_dataset_format(luminance, options.mode)
        if ready is not None:
            return ready
    ink = ink_at_working_size(luminance, invert)
    if options.mode == "mnist":
        return preprocess_mnist(ink, invert, name)
    return preprocess_fashion(ink, invert, name)


def load_and_preprocess(
    source: ImageSource, options: PreprocessOptions | None = None, *, name: str | None = None
) -> np.ndarray:
    """Read an image file (or its bytes) and preprocess it; errors name the file.

    Args:
        source: A path, or the bytes of an image file.
        options: Mode and inversion.
        name: How to call the source in messages; defaults to the path or ``<stdin>``.

    Returns:
        ``(28, 28)`` float32 in ``[0, 1]``.

    Raises:
        BlankImageError: No content was found.
        DataError: The file cannot be read (see :func:`~lenet_cli.data.images.read_image`).
    """
    if name is None:
        name = "<stdin>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    luminance = read_image(source, name=name)
    return preprocess(luminance, options, name=name)


def preprocess_batch(
    sources: Iterable[ImageSource],
    options: PreprocessOptions | None = None,
    *,
    keep_going: bool = False,
) -> list[PreprocessResult]:
    """Read and preprocess many images, one result per source in order.

    Args:
        sources: Paths, or bytes of image files.
        options: Mode and inversion, shared by all.
        keep_going: Record a :class:`LenetError` (blank, unreadable) in the
            failing image's result and carry on, instead of raising it.

    Returns:
        One :class:`PreprocessResult` per source. Stack the good ones with
        ``np.stack([r.array for r in results if r.ok])``.

    Raises:
        DataError: The first failure, unless ``keep_going``.
    """
    options = options or PreprocessOptions()
    results = []
    for source in sources:
        label = source_label(source, None)
        try:
            array = load_and_preprocess(source, options)
        except LenetError as exc:
            if not keep_going:
                raise
            results.append(PreprocessResult(name=label, error=exc))
        else:
            results.append(PreprocessResult(name=label, array=array))
    return results


def to_uint8(array28: np.ndarray) -> np.ndarray:
    """The 8-bit image of a preprocessed input: ``round(x * 255)``, as the datasets store it."""
    return np.clip(np.rint(np.asarray(array28, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def save_preprocessed_png(array28: np.ndarray, path: str | os.PathLike) -> os.PathLike:
    """Write a preprocessed input as an exact 28x28 grayscale PNG, atomically.

    Reading it back and dividing by 255 gives the network input to within
    half a grey level, so people can see what the network saw and feed it
    back unchanged (such files pass through :func:`preprocess` as they are).

    Args:
        array28: ``(28, 28)`` values in ``[0, 1]``.
        path: Destination file; parent directories are created.

    Returns:
        The path written.

    Raises:
        DataError: ``array28`` is not 28x28.
    """
    array28 = np.asarray(array28)
    if array28.shape != (SIZE, SIZE):
        raise DataError(f"a preprocessed image must be {SIZE}x{SIZE}; received shape {array28.shape}")
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array28)).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())
