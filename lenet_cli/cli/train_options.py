"""``lenet train``'s options, as two decorators: the recipe (what the run's ``config.json`` holds) and the run itself.

Apart from the command (:mod:`lenet_cli.cli.train`) because they are most of
its length and only declare: names, Click types (for completion and instant
help) and help texts whose defaults come from
:class:`~lenet_cli.core.config.TrainConfig`. The engine's request decides what
is valid. ``--recipe FILE`` (:func:`apply_recipe`) turns a file's values into
these options' defaults, so an option given on the line still wins.
"""

from __future__ import annotations

from pathlib import Path

import click

from lenet_cli.cli.options import (
    DATASET,
    DATASET_HELP,
    TRAIN_DEFAULTS,
    LayerList,
    data_dir_option,
    default_text,
    merge_freeze,
    runs_dir_option,
)
from lenet_cli.core import config as C


def apply_recipe(ctx, param, path):
    """``--recipe FILE``: the file's options become this command's defaults, so any option given on the line still wins."""
    if path is None:
        return None
    from lenet_cli.core.errors import BadValue
    from lenet_cli.core.tune_space import option_name, read_recipe, unknown_recipe_key

    try:
        recipe = read_recipe(path)
    except BadValue as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    names = {
        opt.lstrip("-"): p.name
        for p in ctx.command.params
        if isinstance(p, click.Option)
        for opt in p.opts
        if opt.startswith("--")
    }
    names.update({p.name: p.name for p in ctx.command.params if p.name not in ("recipe", "resume")})
    unknown = [key for key in recipe if names.get(option_name(key)) in (None, "recipe", "resume")]
    if unknown:
        known = sorted(name for name, dest in names.items() if "_" not in name and dest not in ("recipe", "resume"))
        raise click.BadParameter(f"{str(path)!r} {unknown_recipe_key(unknown[0], known)}", ctx=ctx, param=param)
    ctx.default_map = {**(ctx.default_map or {}), **{names[option_name(key)]: value for key, value in recipe.items()}}
    return path


RECIPE_OPTIONS = (
    click.option(
        "--recipe",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        is_eager=True,
        callback=apply_recipe,
        help="Start from a recipe file: lenet tune's <study>-best.json, or a table of these options' values in TOML "
        '(recipe.toml: dropout = 0.3) or JSON ({"dropout": 0.3}); an option given here overrides it.',
    ),
    click.option(
        "--dataset", type=DATASET, default="mnist", show_default=True, help=f"What to train on. {DATASET_HELP}"
    ),
    click.option(
        "--preprocess",
        type=click.Choice(["auto", *C.PREPROCESS_MODES]),
        default=None,
        help="Picture folders: how each picture becomes a 28x28 input, as lenet predict does it: mnist (digit-like: dark or "
        "light ink, cropped and centred) or fashion (article-like) [default: auto: mnist, or a named dataset's own].",
    ),
    click.option(
        "--preset",
        type=click.Choice(C.PRESETS),
        default="default",
        show_default=True,
        help="'seed' uses the original tutorial's values (Adam 0.01, L1 1e-4, weight decay 1e-4, constant rate).",
    ),
    click.option(
        "--epochs",
        type=click.IntRange(min=1),
        default=None,
        help=f"Passes over the training split {default_text('epochs')}. With --resume: the run's new end "
        f"(its completed epochs to finish now; more to extend it, the schedule stretched to the new end).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help=f"Images per step {default_text('batch_size')}.",
    ),
    click.option(
        "--optimizer",
        type=click.Choice(C.OPTIMIZERS),
        default=None,
        help=f"Optimizer; sgd uses momentum {C.SGD_MOMENTUM} [default: {TRAIN_DEFAULTS.optimizer}].",
    ),
    click.option(
        "--learning-rate",
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help=f"Peak learning rate {default_text('learning_rate', '{:g}')}.",
    ),
    click.option(
        "--schedule",
        type=click.Choice(C.SCHEDULES),
        default=None,
        help=f"Learning-rate schedule [default: {TRAIN_DEFAULTS.schedule}].",
    ),
    click.option(
        "--warmup-epochs",
        type=click.FloatRange(min=0),
        default=None,
        help=f"Linear warm-up before the schedule [default: {TRAIN_DEFAULTS.warmup_epochs:g}].",
    ),
    click.option(
        "--l1",
        type=click.FloatRange(min=0),
        default=None,
        help=f"L1 coefficient on kernels [default: {TRAIN_DEFAULTS.l1:g}].",
    ),
    click.option(
        "--weight-decay",
        type=click.FloatRange(min=0),
        default=None,
        help=f"Weight decay: coefficient of sum(w^2)/2 on kernels [default: {TRAIN_DEFAULTS.weight_decay:g}].",
    ),
    click.option(
        "--dropout",
        type=click.FloatRange(0, 1, max_open=True),
        default=None,
        help=f"Rate of dropout_1, dropout_2 and dropout_3 {default_text('dropout', '{:g}')}.",
    ),
    click.option(
        "--dense-units",
        type=click.IntRange(min=1),
        default=None,
        help=f"Width of dot_1 and dot_2 [default: {TRAIN_DEFAULTS.dense_units}].",
    ),
    click.option(
        "--augment",
        type=click.Choice(C.AUGMENTATIONS),
        default=None,
        help=f"Training augmentation policy (Keras Random* layers, never in the saved model): shift (2 px), flip "
        f"(horizontal: clothing only), flip-shift, digits (shift, rotate 8 deg, zoom 8 %), clothing (flip, shift, "
        f"random erasing), writers (elastic, pen width, rotation, low resolution, shift), writers-tones (writers "
        f"and a tone curve), shift-lowres (shift, and a low-resolution scan for 30 %), tones (flip, "
        f"tone curve: gamma 0.4-2.5, contrast) {default_text('augment')}.",
    ),
    click.option(
        "--ema",
        "ema_momentum",
        type=click.FloatRange(0, 1, max_open=True),
        default=None,
        help=f"Ship an exponential moving average of the weights with this momentum (e.g. 0.999); 0 = the last weights "
        f"{default_text('ema_momentum', '{:g}')}.",
    ),
    click.option(
        "--label-smoothing",
        type=click.FloatRange(0, 1, max_open=True),
        default=None,
        help=f"Spread this share of each training target over the other classes {default_text('label_smoothing', '{:g}')}.",
    ),
    click.option(
        "--calibrate/--no-calibrate",
        default=None,
        help="After training, fit a temperature on the validation split and fold it into logits_layer, so the model's "
        "confidence matches its accuracy; predictions never change [default: on; off with --preset seed].",
    ),
    click.option(
        "--test-time-flip/--no-test-time-flip",
        default=None,
        help="Answer with the mean of each picture's and its mirror image's probabilities (in predict, evaluate, serve "
        "and benchmark; exports stay one view): for classes a left-right flip keeps, such as clothes "
        "[default: on for fashion, off otherwise].",
    ),
    click.option(
        "--precision",
        type=click.Choice(C.PRECISIONS),
        default=None,
        help=f"Training arithmetic: float32; bfloat16 (mixed: weights, LRN, logits and loss stay float32, and the model "
        f"ships in float32); auto (bfloat16 only with native support: AVX512_BF16 or AMX CPUs, or a GPU) "
        f"{default_text('precision')}.",
    ),
    click.option("--seed", type=int, default=None, help=f"Random seed [default: {TRAIN_DEFAULTS.seed}]."),
    click.option(
        "--validation-size",
        type=click.IntRange(min=0),
        default=None,
        help=f"Training images held out for validation [default: {TRAIN_DEFAULTS.validation_size}].",
    ),
    click.option(
        "--train-limit",
        type=click.IntRange(min=1),
        default=None,
        help="Train on only the first N training images (quick trials).",
    ),
    click.option(
        "--init-from",
        type=click.Path(path_type=Path),
        default=None,
        help="Start from this model's weights (a run directory, a run's name or a .keras file); shapes must match.",
    ),
    click.option(
        "--freeze",
        type=LayerList(),
        multiple=True,
        callback=merge_freeze,
        help=f"Layers that keep their weights and get no penalty: {', '.join(C.WEIGHT_LAYERS)} (comma-separated or repeated).",
    ),
)
"""``--recipe`` and the recipe's own options: the data, the preset and every training hyperparameter, in help order."""

RUN_OPTIONS = (
    data_dir_option,
    click.option(
        "--output",
        "-o",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Run directory to create [default: <runs-dir>/<dataset>-<timestamp>].",
    ),
    runs_dir_option,
    click.option(
        "--tensorboard/--no-tensorboard",
        default=True,
        show_default=True,
        help="Write TensorBoard logs to <run>/logs.",
    ),
    click.option("--histograms", is_flag=True, help="Also log weight histograms each epoch."),
    click.option(
        "--resume",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Continue an interrupted run (its folder or its name) from its last completed epoch, with its saved config.",
    ),
    click.option(
        "--keep-checkpoint",
        is_flag=True,
        help="Keep checkpoint.npz once the run has finished (it is deleted then by default).",
    ),
    click.option(
        "--deterministic",
        is_flag=True,
        help="Use TensorFlow's deterministic ops: with --seed, runs are bitwise reproducible.",
    ),
)
"""Where the run reads and writes, what it logs and keeps, and whether it continues an earlier run, in help order."""


def recipe_options(fn):
    """Add :data:`RECIPE_OPTIONS` to a command."""
    return _add_options(RECIPE_OPTIONS, fn)


def run_options(fn):
    """Add :data:`RUN_OPTIONS` to a command."""
    return _add_options(RUN_OPTIONS, fn)


def _add_options(options, fn):
    for option in reversed(options):  # the last decorator applied is listed first, as if written above the command
        fn = option(fn)
    return fn
