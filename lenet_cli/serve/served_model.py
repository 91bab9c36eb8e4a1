"""The model ``lenet serve`` answers with: resolved once, loaded in the app's lifespan, shared by every request."""

from __future__ import annotations

import numpy as np

from lenet_cli.engine.context import for_pictures
from lenet_cli.store.runs import CONFIG_FILE, MODEL_FILE


def run_name(ref) -> str | None:
    """The name of the run whose model ``ref`` is (its directory's name), or None for a model file of its own."""
    if ref.run_dir is not None:
        return ref.run_dir.name
    if ref.model_path.name == MODEL_FILE and (ref.model_path.parent / CONFIG_FILE).is_file():
        return ref.model_path.parent.name  # a run's model.keras, named directly
    return None


class ServedModel:
    """A model to serve, with its class names and default preprocessing; loaded on :meth:`load`.

    Args:
        ref: The resolved model (:func:`lenet_cli.store.runs.resolve_model`).
        preprocess: ``auto`` (the model's dataset), ``mnist``, ``fashion`` or ``none``.
        engine: Which of a run's models answers (:func:`lenet_cli.engine.context.choose_engine`): ``auto``
            (its TensorFlow-free ``model.tflite`` when checked OK), ``keras``, or None (``ref`` itself).

    Raises:
        LenetError: the model's dataset (and so its class names and preprocessing) cannot be told.
    """

    def __init__(self, ref, preprocess: str = "auto", engine: str | None = None):
        self.context = for_pictures(ref, preprocess=preprocess, engine=engine)
        self._describe(self.context)
        self.dataset = self.context.dataset
        self.preprocess, self.class_names = self.context.picture_settings()
        self.loaded = None

    def _describe(self, context) -> None:
        """Name the model that answers (``run/model.tflite``, ``run/model.keras`` or the file's name) and its format."""
        self.ref = context.ref
        self.path = context.ref.model_path
        self.run = run_name(context.ref)
        self.name = f"{self.run}/{self.path.name}" if self.run else self.path.name  # what answers say served them
        if (
            self.run is None and self.path.is_dir() and self.path.name.isdigit()
        ):  # a version of TF Serving's layout: lenet/3, not 3
            self.name = f"{self.path.parent.name}/{self.path.name}"
        self.format = context.format

    def load(self, log=None) -> None:
        """Load the model (TensorFlow only for ``.keras`` and SavedModel); a no-op once loaded.

        ``log`` receives one line when a run's ``model.keras`` answers where its TensorFlow-free copy could have, and why.
        """
        if self.loaded is None:
            context, self.loaded = self.context.load(log=log)
            if context is not self.context:  # the copy failed to load: model.keras answers, and says so
                self.context = context
                self._describe(context)

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, classes)`` for float32 ``(n, 28, 28, 1)`` inputs in [0, 1]."""
        if self.loaded is None:
            raise RuntimeError("the model is not loaded yet: call load() first")
        return self.loaded.predict(images)
