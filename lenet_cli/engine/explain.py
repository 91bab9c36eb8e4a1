"""Explain predictions: per image, the top-k, an attribution map, feature maps, and a sheet.

The worker behind ``lenet explain``: it returns :class:`Explanation` records
and writes the PNG sheets; the CLI prints. Images are decoded and
preprocessed exactly as ``lenet predict`` does, then explained in batches
(one network call covers many images' Integrated Gradients paths or occlusion
patches). Integrated Gradients and feature maps need a Keras model;
occlusion works with every format and, with ``.onnx`` and ``.tflite`` models,
never imports TensorFlow. Given a run, Integrated Gradients (the default)
uses its ``model.keras`` and occlusion its TensorFlow-free ``model.tflite``
(``engine``, as for ``lenet predict``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core import checks
from lenet_cli.core.config import DEFAULT_TOP_K, ENGINES
from lenet_cli.core.errors import BadValue, LenetError, ModelError
from lenet_cli.core.prediction import Explanation
from lenet_cli.engine.context import PictureRequest
from lenet_cli.engine.explain_sheets import PARALLEL_SHEETS_MIN, SheetWriter, sheet_content, sheet_name
from lenet_cli.model import attribution as A

METHODS = ("integrated-gradients", "occlusion")
DEFAULT_OUTPUT_DIR = Path("explanations")
DISPLAY_MAX_SIDE = 320
"""The original picture is shown at most this many pixels on its longest side."""

EXPLAIN_BATCH = 32
"""Images per batch: 32 x 51 Integrated Gradients points, or 32 x 626 occluded copies, per round."""


@dataclass
class AttributionBatch:
    """A batch's maps and, for Integrated Gradients, each map's completeness check (None for occlusion)."""

    maps: np.ndarray
    gaps: np.ndarray | None = None
    logit_differences: np.ndarray | None = None
    steps_used: np.ndarray | None = None
    reliable: np.ndarray | None = None


def default_method(loaded) -> str:
    """Integrated Gradients where there are gradients (a Keras model), occlusion otherwise."""
    return "integrated-gradients" if loaded.keras_model is not None else "occlusion"


def parse_target(text: str | None, class_names: Sequence[str]) -> int | None:
    """A class given by name (any case) or index, as an index; None stays None (explain the prediction).

    Raises:
        ModelError: the model has no class of that name or index.
    """
    if text is None:
        return None
    wanted = text.strip()
    for index, name in enumerate(class_names):
        if wanted.lower() == str(name).lower():
            return index
    if wanted.isdigit() and int(wanted) < len(class_names):
        return int(wanted)
    choices = ", ".join(f"{i} {name!r}" if str(name) != str(i) else str(i) for i, name in enumerate(class_names))
    raise ModelError(f"unknown target class {text!r}; give an index or a name: {choices}")


class Explainer:
    """A loaded model ready to explain batches: attribution, top-k, and (Keras) feature maps and filters.

    Args:
        loaded: A :class:`~lenet_cli.runtimes.loading.LoadedModel`.
        class_names: Names by class index.
        method: ``integrated-gradients`` (Keras models only) or ``occlusion``.
        steps: Integrated Gradients' trapezoid intervals, to start with: doubled, up to
            ``max_steps``, for an image whose completeness gap is above ``gap_limit``.
        patch, stride: Occlusion's square patch and its step, in pixels.

    Raises:
        BadValue: an unknown method.
        ModelError: Integrated Gradients asked of a model without gradients.
    """

    def __init__(
        self,
        loaded,
        class_names: Sequence[str],
        method: str | None = None,
        steps: int = A.IG_STEPS,
        patch: int = A.OCCLUSION_PATCH,
        stride: int = A.OCCLUSION_STRIDE,
        gap_limit: float = A.IG_GAP_LIMIT,
        max_steps: int = A.IG_MAX_STEPS,
    ):
        method = method or default_method(loaded)
        if method not in METHODS:
            raise BadValue("method", f"unknown attribution method {method!r}; choose one of: {', '.join(METHODS)}")
        if method == "integrated-gradients" and loaded.keras_model is None:
            raise ModelError(
                f"integrated gradients needs the gradients of a .keras model, and {str(loaded.path)!r} is a "
                f"{loaded.format} model; use method 'occlusion'"
            )
        A.occlusion_patches(28, patch, stride)  # validates patch and stride
        self.loaded = loaded
        self.class_names = [str(name) for name in class_names]
        self.method = method
        self.steps = int(steps)
        self.gap_limit = float(gap_limit)
        self.max_steps = max(int(max_steps), self.steps)
        self.patch = int(patch)
        self.stride = int(stride)
        self._gradient_fn: A.GradientFn | None = None
        # a tf.function: (n, 28, 28, 1) -> (conv_1, conv_2) tensors
        self._features: Callable[[np.ndarray], Any] | None = None
        self.filters: np.ndarray | None = None
        if self.has_feature_maps:
            kernel = np.asarray(loaded.keras_model.get_layer("conv_1").get_weights()[0])  # (5, 5, 1, 20)
            self.filters = np.moveaxis(kernel[:, :, 0, :], -1, 0)

    @property
    def method_detail(self) -> str:
        return self.detail(self.steps)

    def detail(self, steps_used: int | None = None) -> str:
        """How the map was made, for the sheet: ``"200 steps (raised from 50) from a black baseline, on the logit"``."""
        if self.method == "integrated-gradients":
            used = self.steps if steps_used is None else steps_used
            raised = f" (raised from {self.steps})" if used != self.steps else ""
            return f"{used} steps{raised} from a black baseline, on the logit"
        return f"{self.patch}×{self.patch} black patch, stride {self.stride}, fall in log-odds"

    @property
    def has_feature_maps(self) -> bool:
        """A Keras model with lenet's ``conv_1`` and ``conv_2`` layers."""
        model = self.loaded.keras_model
        return model is not None and all(
            any(layer.name == name for layer in model.layers) for name in ("conv_1", "conv_2")
        )

    def feature_maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``conv_1`` ``(n, 24, 24, 20)`` and ``conv_2`` ``(n, 10, 10, 50)`` activations (after ReLU)."""
        if self._features is None:
            import keras

            from lenet_cli.core.tensorflow_env import import_tensorflow

            tf = import_tensorflow()
            model = self.loaded.keras_model
            view = keras.Model(
                model.inputs,
                [model.get_layer("conv_1").output, model.get_layer("conv_2").output],
                name="lenet_features",
            )
            self._features = tf.function(lambda x: view(x, training=False), reduce_retracing=True)
        first, second = self._features(np.asarray(images, np.float32).reshape(-1, 28, 28, 1))
        return first.numpy(), second.numpy()

    def attributions(self, images: np.ndarray, targets: np.ndarray) -> AttributionBatch:
        """The maps ``(n, 28, 28)``, with Integrated Gradients' completeness check (steps raised where the gap is large)."""
        if self.method == "occlusion":
            return AttributionBatch(
                A.occlusion_sensitivity_batch(self.loaded.predict, images, targets, self.patch, self.stride)
            )
        if self._gradient_fn is None:
            self._gradient_fn = A.keras_logit_gradients(self.loaded.keras_model)
        checked = A.integrated_gradients_checked(
            self._gradient_fn, images, targets, steps=self.steps, gap_limit=self.gap_limit, max_steps=self.max_steps
        )
        return AttributionBatch(
            checked.attributions,
            checked.gaps,
            checked.logit_image - checked.logit_baseline,
            checked.steps_used,
            checked.reliable,
        )

    def explain(self, images: np.ndarray, target: int | None = None, top_k: int = DEFAULT_TOP_K) -> list[Explanation]:
        """Explain a batch of preprocessed ``(n, 28, 28)`` inputs (paths left empty for the caller)."""
        images = np.asarray(images, dtype=np.float32)
        probabilities = self.loaded.predict(images[..., None])
        predicted = probabilities.argmax(axis=1)
        targets = predicted if target is None else np.full(len(images), target)
        batch = self.attributions(images, targets)
        gaps, logit_differences, steps_used, reliable = (
            batch.gaps,
            batch.logit_differences,
            batch.steps_used,
            batch.reliable,
        )
        conv_1 = conv_2 = None
        if self.has_feature_maps:
            conv_1, conv_2 = self.feature_maps(images)
        k = max(1, min(top_k, len(self.class_names)))
        results = []
        for row, probs in enumerate(probabilities):
            order = np.argsort(-probs, kind="stable")[:k]
            best = int(order[0])
            results.append(
                Explanation(
                    path="",
                    label=self.class_names[best],
                    index=best,
                    confidence=float(probs[best]),
                    top_k=[
                        {"label": self.class_names[int(i)], "index": int(i), "confidence": float(probs[int(i)])}
                        for i in order
                    ],
                    method=self.method,
                    target={"label": self.class_names[int(targets[row])], "index": int(targets[row])},
                    attribution=batch.maps[row],
                    completeness_gap=None if gaps is None else float(gaps[row]),
                    logit_difference=None if logit_differences is None else float(logit_differences[row]),
                    steps_used=None if steps_used is None else int(steps_used[row]),
                    attribution_reliable=None if reliable is None else bool(reliable[row]),
                    network_input=images[row],
                    probabilities=probs,
                    conv_1_maps=None if conv_1 is None else conv_1[row],
                    conv_2_maps=None if conv_2 is None else conv_2[row],
                )
            )
        return results


def display_picture(source, luminance: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The picture as given, for the sheet: colour when it has colour, at most :data:`DISPLAY_MAX_SIDE` px.

    Returns the picture and the file's own ``(width, height)`` (upright, as
    the network read it): the sheet reports the size of what was given, not
    of its thumbnail. Falls back to the decoded luminance when Pillow cannot
    give a colour version.
    """
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
            image.seek(0)
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"):
                size = image.size
                image = image.convert("RGBA" if ("A" in image.mode or "transparency" in image.info) else "RGB")
                image.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))
                return np.asarray(image), size
    except Exception:  # any decoding trouble: the luminance lenet read is still a faithful picture
        pass
    return _shrink(luminance), (luminance.shape[1], luminance.shape[0])


def _shrink(luminance: np.ndarray) -> np.ndarray:
    height, width = luminance.shape
    step = max(1, int(np.ceil(max(height, width) / DISPLAY_MAX_SIDE)))
    return np.asarray(luminance[::step, ::step], dtype=np.float32)


def _decode(item, options) -> tuple[np.ndarray | None, tuple[np.ndarray, tuple[int, int]] | None, str | None]:
    """``(network input, (picture for the sheet, its file's size), None)`` or ``(None, None, one-line error)``."""
    from lenet_cli.data.images import read_image
    from lenet_cli.data.preprocess import preprocess

    if item.error:
        return None, None, item.error
    source = item.data if item.data is not None else item.path
    try:
        luminance = read_image(source, name=item.name)
        array = preprocess(luminance, options, name=item.name)
    except LenetError as exc:
        return None, None, str(exc).splitlines()[0]
    return array, display_picture(source, luminance), None


def explain_items(
    items,
    explainer: Explainer,
    options,
    target: int | None = None,
    top_k: int = DEFAULT_TOP_K,
    batch_size: int = EXPLAIN_BATCH,
) -> Iterator[Explanation]:
    """Yield one :class:`Explanation` per input item, in order, explaining ``batch_size`` images per network round."""
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        decoded = [_decode(item, options) for item in chunk]
        good = [array for array, _, _ in decoded if array is not None]
        explained = iter(explainer.explain(np.stack(good), target, top_k) if good else [])
        for item, (array, picture, error) in zip(chunk, decoded):
            if array is None:
                yield Explanation(item.name, error=error)
                continue
            assert picture is not None, "_decode gives a picture with every input it decodes"
            result = next(explained)
            result.path = item.name
            result.original, result.original_size = picture
            yield result


MAX_SHEET_WORKERS = 4


@dataclass(frozen=True)
class ExplainRequest(PictureRequest):
    """What ``lenet explain`` (and :func:`lenet_cli.api.explain`) is asked to do: a :class:`PictureRequest`, and

    Attributes:
        method: ``integrated-gradients`` or ``occlusion``; None picks by model format (Integrated Gradients for a run).
        target: Explain this class (a name or an index) instead of the predicted one.
        steps: Integrated Gradients' steps along the path from the black baseline.
        output_dir: The folder the PNG sheets go to.
        engine: Which of a run's models occlusion uses: ``auto`` (its TensorFlow-free ``model.tflite`` when
            checked OK) or ``keras``. Integrated Gradients always uses ``model.keras``.
    """

    method: str | None = None
    target: str | None = None
    steps: int = A.IG_STEPS
    output_dir: str | os.PathLike = DEFAULT_OUTPUT_DIR
    engine: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method is not None:
            checks.one_of("method", self.method, METHODS)
        checks.whole_at_least("steps", self.steps, 1)
        checks.one_of("engine", self.engine, ENGINES)


@dataclass
class ExplainResult:
    """Every input's explanation (``error`` set for a failed one), the method used, and where the sheets are."""

    explanations: list[Explanation]
    method: str
    output_dir: Path

    @property
    def failures(self) -> int:
        return sum(e.error is not None for e in self.explanations)


def explain(
    request: ExplainRequest,
    on_explanation: Callable[[Explanation], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ExplainResult:
    """Explain every input in order, write one sheet each, and hand each explanation on once its sheet is written.

    ``log`` receives one line when a run's ``model.keras`` answers where its TensorFlow-free copy could have, and why.

    Raises:
        LenetError: no inputs, no such model, a method the model's format cannot do, a bad target or output folder.
    """
    from lenet_cli.data.picture_inputs import decode_workers, gather_inputs
    from lenet_cli.data.preprocess import PreprocessOptions
    from lenet_cli.engine.context import for_pictures

    items = gather_inputs(request.inputs, request.recursive, request.files_from, log=log)
    # Integrated Gradients (the default for a run) needs model.keras; occlusion answers with whatever --engine picks
    engine = request.engine if request.method == "occlusion" or request.engine == "keras" else None
    context = for_pictures(request.model, request.runs_dir, request.preprocess, engine)
    if request.method == "integrated-gradients" and context.format != "keras":
        raise ModelError(
            f"integrated gradients needs the gradients of a .keras model, and {str(context.ref.model_path)!r} is not one; "
            "use method 'occlusion'"
        )
    top_k = context.resolve_top_k(request.top_k)
    preprocess, class_names = context.picture_settings()
    target_index = parse_target(request.target, class_names)
    output_dir = Path(request.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BadValue("output_dir", f"{str(output_dir)!r} is a file; name a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    options = PreprocessOptions(mode=preprocess, invert=request.invert)
    done: list[Explanation] = []

    def emit(explanation: Explanation) -> None:
        explanation.release_pictures()  # its sheet is written; keep only what the records hold
        done.append(explanation)
        if on_explanation is not None:
            on_explanation(explanation)

    sheet_workers = min(decode_workers(), MAX_SHEET_WORKERS) if len(items) >= PARALLEL_SHEETS_MIN else 1
    writer = SheetWriter(sheet_workers)  # before the model loads: its workers import matplotlib meanwhile
    try:
        context, loaded = context.load(log=log)
        explainer = Explainer(loaded, class_names, request.method, steps=request.steps)
        taken: set[str] = set()
        for explanation in explain_items(items, explainer, options, target_index, top_k):
            if explanation.error is None:
                content = sheet_content(explanation, explainer, context.label, context.class_dataset, top_k)
                finished = writer.submit(explanation, content, output_dir / sheet_name(explanation.path, taken))
            else:
                finished = writer.submit(explanation)
            for item in finished:
                emit(item)
        for item in writer.finish():
            emit(item)
    finally:
        writer.close()
    return ExplainResult(done, explainer.method, output_dir)
