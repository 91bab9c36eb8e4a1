"""The seed LeNet, built with the functional Keras API, and loaded back safely.

The network carries no regularizers: its objective lives in
:mod:`lenet_cli.model.objective`, so each term can be logged on its own and a saved
model carries no training-only objects.
"""

from __future__ import annotations

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
from keras import layers

from lenet_cli.core import config as C
from lenet_cli.model.layers import LocalResponseNormalization


def build_lenet(
    dense_units: int = C.DENSE_UNITS,
    dropout: float = C.DROPOUT_RATE,
    seed: int | None = None,
    num_classes: int = C.NUM_CLASSES,
    precision: str = "float32",
) -> keras.Model:
    """Build the seed network: conv-pool-LRN twice, three dropouts, two dense layers, softmax.

    ``logits_layer`` has one unit per class of the dataset (10 for MNIST).
    ``precision="bfloat16"`` builds the training network of :mod:`lenet_cli.model.precision`
    (mixed bfloat16; LRN, logits and softmax in float32).

    The model outputs class probabilities (``softmax_layer``); training reads the
    ``logits_layer`` output too, for a numerically stable cross-entropy.
    """
    from lenet_cli.model.precision import layer_dtype

    init = keras.initializers.GlorotUniform

    def dtype(name: str) -> dict:
        return {} if precision == "float32" else {"dtype": layer_dtype(precision, name)}

    inputs = keras.Input(shape=(C.IMAGE_SIZE, C.IMAGE_SIZE, 1), name="image")

    def kernel_init(offset: int):
        return init(seed=None if seed is None else seed + offset)

    x = layers.Conv2D(
        C.CONV_1_FILTERS,
        C.CONV_1_KERNEL,
        padding=C.CONV_PADDING,
        activation="relu",
        kernel_initializer=kernel_init(1),
        name="conv_1",
        **dtype("conv_1"),
    )(inputs)
    x = layers.MaxPooling2D(C.POOL_SIZE, name="pool_1", **dtype("pool_1"))(x)
    x = LocalResponseNormalization(name="lrn_1", **dtype("lrn_1"))(x)
    x = layers.Conv2D(
        C.CONV_2_FILTERS,
        C.CONV_2_KERNEL,
        padding=C.CONV_PADDING,
        activation="relu",
        kernel_initializer=kernel_init(2),
        name="conv_2",
        **dtype("conv_2"),
    )(x)
    x = layers.MaxPooling2D(C.POOL_SIZE, name="pool_2", **dtype("pool_2"))(x)
    x = LocalResponseNormalization(name="lrn_2", **dtype("lrn_2"))(x)
    x = layers.Flatten(name="flatten", **dtype("flatten"))(x)
    x = layers.Dropout(dropout, seed=None if seed is None else seed + 11, name="dropout_1", **dtype("dropout_1"))(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer=kernel_init(3), name="dot_1", **dtype("dot_1"))(
        x
    )
    x = layers.Dropout(dropout, seed=None if seed is None else seed + 12, name="dropout_2", **dtype("dropout_2"))(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer=kernel_init(4), name="dot_2", **dtype("dot_2"))(
        x
    )
    x = layers.Dropout(dropout, seed=None if seed is None else seed + 13, name="dropout_3", **dtype("dropout_3"))(x)
    logits = layers.Dense(num_classes, kernel_initializer=kernel_init(5), name="logits_layer", **dtype("logits_layer"))(
        x
    )
    probabilities = layers.Softmax(name="softmax_layer", **dtype("softmax_layer"))(logits)
    return keras.Model(inputs, probabilities, name="lenet")


def logits_and_probabilities(model: keras.Model) -> keras.Model:
    """A view of ``model`` returning ``[logits, probabilities]`` (shares its layers and weights)."""
    return keras.Model(model.inputs, [model.get_layer("logits_layer").output, model.output], name="lenet_train_view")


def load_model_file(path) -> keras.Model:
    """Load a ``.keras`` file with ``safe_mode=True``: no code from the file ever runs.

    Raises:
        ModelError: the file is not a loadable Keras model, or it carries code (a Lambda layer).
    """
    from lenet_cli.core.errors import ModelError
    from lenet_cli.model.keras_archive import check_keras_archive

    check_keras_archive(path)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "lambda" in text:
            raise ModelError(
                f"refusing to load {str(path)!r}: it carries code (a Lambda layer or Python function), which safe mode never runs"
            ) from None
        raise ModelError(
            f"cannot load model {str(path)!r}: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from None
    except (OSError, KeyError, TypeError, EOFError) as exc:
        raise ModelError(
            f"cannot load model {str(path)!r}: the file is truncated, corrupt or not a .keras model ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a damaged archive
        import zipfile

        if isinstance(exc, zipfile.BadZipFile):
            raise ModelError(
                f"cannot load model {str(path)!r}: the file is truncated or not a .keras archive"
            ) from None
        raise
