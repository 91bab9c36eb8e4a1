"""Every default in one place: the network's shape and the training recipe.

The architecture constants reproduce the seed design (a LeNet with local
response normalization). :class:`TrainConfig` is the one frozen dataclass the
CLI reads its defaults from and the run directory saves as ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from lenet_cli.core import checks
from lenet_cli.core.errors import BadValue

# --- The seed network -------------------------------------------------------
IMAGE_SIZE = 28  # MNIST and Fashion-MNIST images are 28x28, one channel
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # the network's input, channels last
PIXEL_MAX = 255.0  # stored uint8 pixels; the network sees pixel / PIXEL_MAX in [0, 1]
NUM_CLASSES = 10
CONV_1_FILTERS = 20
CONV_1_KERNEL = 5
CONV_2_FILTERS = 50
CONV_2_KERNEL = 3
POOL_SIZE = 2
CONV_PADDING = "valid"  # 28 -> 24 -> 12 -> 10 -> 5: 1,250 features into dot_1, ~3 M weights in all
LRN_DEPTH_RADIUS = 5  # TensorFlow's tf.nn.local_response_normalization defaults
LRN_BIAS = 1.0
LRN_ALPHA = 1.0
LRN_BETA = 0.5
DENSE_UNITS = 1200
DROPOUT_RATE = 0.5
SGD_MOMENTUM = 0.7

# Layer names of the functional model, in order.
LAYER_NAMES = (
    "conv_1",
    "pool_1",
    "lrn_1",
    "conv_2",
    "pool_2",
    "lrn_2",
    "flatten",
    "dropout_1",
    "dot_1",
    "dropout_2",
    "dot_2",
    "dropout_3",
    "logits_layer",
    "softmax_layer",
)
# Layers that hold weights: the only ones that train, freeze or get regularized.
WEIGHT_LAYERS = ("conv_1", "conv_2", "dot_1", "dot_2", "logits_layer")

DATASETS = ("mnist", "fashion")
# Every --dataset name (lenet_cli/datasets/named.py knows where each comes from); a path is accepted too.
NAMED_DATASETS = (
    "mnist",
    "fashion",
    "kmnist",
    "qmnist",
    "emnist-digits",
    "emnist-letters",
    "emnist-balanced",
    "emnist-byclass",
    "emnist-bymerge",
    "emnist-mnist",
)
OWN_DATA_VALIDATION_FRACTION = 0.1  # own data: a tenth of the training pictures held out, at most VALIDATION_SIZE
OPTIMIZERS = ("adam", "rmsprop", "sgd")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "float32", "bfloat16")  # lenet_cli/precision.py; auto is resolved before a run starts
AUGMENTATIONS = (
    "none",
    "shift",
    "flip",
    "flip-shift",
    "digits",
    "clothing",
    "writers",
    "writers-tones",
    "shift-lowres",
    "tones",
)  # lenet_cli/model/augmentation.py
PRESETS = ("default", "seed")

# --- Choices the commands offer, owned here so `--help` needs no worker module --
DISTRIBUTE_MODES = ("none", "mirrored", "multi-worker")
WORKER_TIMEOUT = 120  # multi-worker: seconds to wait for the cluster to form, and for any one collective
QUANTIZE_MODES = ("none", "dynamic", "int8")
PREPROCESS_MODES = ("mnist", "fashion", "none")  # how a picture becomes a 28x28 input
INVERT_MODES = ("auto", "always", "never")
ENGINES = (
    "auto",
    "keras",
)  # which of a run's models answers: auto = its TensorFlow-free model.tflite when checked OK, else model.keras
SPLITS = ("test", "validation", "train")
PREDICT_FORMATS = ("table", "json", "jsonl", "csv", "tsv")
EVALUATE_FORMATS = ("table", "json", "csv")
TRAIN_FORMATS = ("table", "json")
TUNE_FORMATS = ("table", "json", "csv")
TUNE_PRUNERS = (
    "median",
    "hyperband",
    "none",
)  # lenet_cli/engine/tune/study.py: stop a trial whose validation accuracy trails, or never

# --- Shared defaults ------------------------------------------------------------
VALIDATION_SIZE = 5000  # the first N training images are held out, as TensorFlow's MNIST feeder did
INFERENCE_BATCH_SIZE = 1000  # images per compiled inference call
# temperature scaling's range (lenet_cli/calibration.py): a mistake-free split cannot push answers to certainty
TEMPERATURE_BOUNDS = (0.25, 4.0)
# fewer validation images say too little about confidence: the run ships uncalibrated, and says so
CALIBRATION_MIN_IMAGES = 100
# classes listed per answer, and the k of evaluate's top-k accuracy; a model with fewer classes lists them all
DEFAULT_TOP_K = 3
# predict/serve flag an answer whose top probability is below this; evaluate reports how often (README)
MIN_CONFIDENCE = 0.5

# --- The seed's literal training values (``--preset seed``) -------------------
SEED_PRESET: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 0.01,
    "schedule": "constant",
    "warmup_epochs": 0.0,
    "l1": 1e-4,
    "weight_decay": 1e-4,
    "batch_size": 128,
    "augment": "none",
    "dropout": DROPOUT_RATE,
    "ema_momentum": 0.0,
    "calibrate": False,
    "test_time_flip": False,
}

# --- Defaults that train well, chosen on the validation split ----------------
# Values that differ between datasets; everything else is shared.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # both chosen with `python -m bench.recipes` on the validation split (bench/RESULTS.md)
    "mnist": {
        "epochs": 20,
        "augment": "shift",
        "dropout": 0.3,
        "batch_size": 256,
        "learning_rate": 2e-3,
        "ema_momentum": 0.999,
    },
    "fashion": {
        "epochs": 24,
        "augment": "tones",
        "dropout": 0.25,
        "batch_size": 256,
        "learning_rate": 2e-3,
        "test_time_flip": True,
    },
}


# TrainConfig's checks, by kind (each field's option shows the same range in --help)
_WHOLE_AT_LEAST = {"epochs": 1, "batch_size": 1, "dense_units": 1, "validation_size": 0, "train_limit": 1, "trial": 0}
_OPTIONAL = ("validation_size", "train_limit", "trial")  # None: the dataset's default, every image, not a trial
_FINITE_AT_LEAST = (
    ("learning_rate", 0.0, True),
    ("warmup_epochs", 0.0, False),
    ("l1", 0.0, False),
    ("weight_decay", 0.0, False),
)
_FRACTIONS = ("dropout", "ema_momentum", "label_smoothing")  # [0, 1): a rate of 1 would leave nothing to learn from
_CHOICES = {
    "preset": PRESETS,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "augment": AUGMENTATIONS,
    "precision": PRECISIONS,
}


@dataclass(frozen=True)
class TrainConfig:
    """The full, resolved recipe of one training run (saved as ``config.json``)."""

    dataset: str = "mnist"  # mnist | fashion
    preset: str = "default"  # default | seed (the original tutorial's values)
    epochs: int = 12  # passes over the training split
    batch_size: int = 128  # images per optimizer step (256 trains ~1.3x more images/s on 2 cores)
    optimizer: str = "adam"  # adam | rmsprop | sgd (momentum 0.7)
    learning_rate: float = 1e-3  # peak learning rate (scaled with the batch: 2e-3 at 256)
    schedule: str = "cosine"  # cosine decay to 0 over the run, or constant
    warmup_epochs: float = 0.0  # linear warm-up before the schedule
    l1: float = 1e-6  # coefficient of sum|w| over kernels (seed: 1e-4)
    weight_decay: float = 1e-5  # coefficient of sum(w^2)/2 over kernels (seed: 1e-4)
    dropout: float = DROPOUT_RATE  # rate of dropout_1..3
    dense_units: int = DENSE_UNITS  # width of dot_1 and dot_2
    augment: str = "none"  # a policy of lenet_cli/model/augmentation.py (AUGMENTATIONS)
    ema_momentum: float = 0.0  # 0: ship the last weights; else an exponential moving average of them (Keras's use_ema)
    label_smoothing: float = 0.0  # share of each target spread over the other classes (train only)
    # fit a temperature on the validation split and fold it into logits_layer (metrics.json: calibration)
    calibrate: bool = True
    # answer with the mean of the picture's and its mirror image's probabilities (lenet_cli/core/mirror.py);
    # for datasets whose classes a left-right flip keeps (clothes, not digits)
    test_time_flip: bool = False
    # float32 | bfloat16 (mixed: weights, LRN, logits and loss stay float32) | auto (resolved at start)
    precision: str = "float32"
    seed: int = 0  # seeds weights, shuffling, dropout and augmentation
    validation_size: int | None = VALIDATION_SIZE  # training images held out for validation (None: a tenth of own data)
    train_limit: int | None = None  # use only the first N training images (quick trials)
    freeze: tuple[str, ...] = ()  # layers that keep their (initial) weights
    init_from: str | None = None  # model whose weights start the run
    data_source: str | None = None  # the folder the dataset's files were read from (later commands look there first)
    # how pictures become 28x28 inputs: mnist (digit-like) | fashion (article-like) | none
    preprocess: str | None = None
    class_names: tuple[str, ...] | None = None  # the dataset's classes in label order (logits_layer has one unit each)
    data_fingerprint: str | None = None  # sha256 over the dataset's files (pictures: names, sizes, times)
    study: str | None = None  # the lenet tune study this run is a trial of (None: not a trial)
    trial: int | None = None  # its trial number in that study

    def __post_init__(self) -> None:
        """Refuse a recipe that cannot train, field by field, before any data or TensorFlow loads.

        The Python API, ``lenet train``, ``lenet tune`` and a run's saved ``config.json`` all build the recipe here,
        so they refuse the same values with the same words (the command line adds the option's name).

        Raises:
            BadValue: the first field whose value is out of range, not a choice, not finite or of the wrong kind.
        """
        for name, low in _WHOLE_AT_LEAST.items():
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                checks.whole_at_least(name, value, low)
        for name, bound, open_low in _FINITE_AT_LEAST:
            checks.finite_at_least(name, getattr(self, name), bound, open_low=open_low)
        for name in _FRACTIONS:
            checks.fraction(name, getattr(self, name))
        for name, choices in _CHOICES.items():
            checks.one_of(name, getattr(self, name), choices)
        if self.preprocess is not None:
            checks.one_of("preprocess", self.preprocess, ("auto", *PREPROCESS_MODES))
        for name in ("calibrate", "test_time_flip"):
            checks.flag(name, getattr(self, name))
        checks.whole("seed", self.seed)
        checks.names_among("freeze", self.freeze, WEIGHT_LAYERS)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise BadValue("dataset", f"must be a dataset's name or a path, not {self.dataset!r}")

    def to_json_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["freeze"] = list(self.freeze)
        if self.class_names is not None:
            data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from ``config.json``'s values (unknown keys ignored).

        Raises:
            ValueError: a known key holds a value of the wrong type (a damaged or foreign file).
            BadValue: a known key holds a value the recipe refuses (out of range, not a choice).
        """
        check_config_types(data)
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if "freeze" in values:
            values["freeze"] = tuple(values["freeze"])
        if values.get("class_names") is not None:
            values["class_names"] = tuple(str(name) for name in values["class_names"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2)

    @classmethod
    def load(cls, path) -> TrainConfig:
        """Read a run's ``config.json``.

        Raises:
            RunError: the file is missing, not JSON, not a lenet config, or holds a value the recipe refuses.
        """
        from pathlib import Path

        from lenet_cli.core.errors import RunError

        path = Path(path)
        try:
            return cls.from_json_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RunError(f"{str(path)!r} does not exist; the run directory is incomplete") from None
        except BadValue as exc:
            raise RunError(
                f"{str(path)!r} is not a valid lenet config ({exc.field} {exc}); the run cannot be used"
            ) from None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            detail = str(exc).splitlines()[0] if isinstance(exc, ValueError) and str(exc) else type(exc).__name__
            raise RunError(f"{str(path)!r} is not a valid lenet config ({detail}); the run cannot be used") from None


_JSON_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def check_config_types(data: dict[str, Any]) -> None:
    """Check that every :class:`TrainConfig` field in ``data`` holds a value of its declared JSON type.

    A run's ``config.json`` is read by every later command; a damaged or foreign
    file must be refused where it is read, not deep inside training.

    Raises:
        ValueError: the first field whose value has the wrong type.
    """
    for field in dataclasses.fields(TrainConfig):
        if field.name not in data:
            continue
        value, declared = data[field.name], str(field.type)
        kinds = [kind.strip() for kind in declared.split("|")]
        if value is None and "None" in kinds:
            continue
        base = kinds[0]
        if base.startswith("tuple[str"):
            ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        else:
            ok = isinstance(value, _JSON_TYPES[base]) and (base == "bool") == isinstance(value, bool)
        if not ok:
            raise ValueError(
                f"{field.name!r} should be {declared.replace('tuple[str, ...]', 'a list of strings')}, "
                f"not {type(value).__name__}"
            )


def resolve_config(dataset: str, preset: str = "default", **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`: class defaults, then the dataset's, then the preset's, then overrides.

    ``None`` overrides mean "not given" and are ignored, so CLI options can
    default to ``None`` and still show the real default in ``--help``.
    """
    values: dict[str, Any] = {"dataset": dataset, "preset": preset}
    values.update(
        DATASET_DEFAULTS.get(dataset, DATASET_DEFAULTS["mnist"])
    )  # the MNIST family and own data: MNIST's recipe
    if dataset not in NAMED_DATASETS:
        values["validation_size"] = None  # own data: a tenth of its training pictures (data.load_dataset decides)
    if preset == "seed":
        values.update(SEED_PRESET)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
