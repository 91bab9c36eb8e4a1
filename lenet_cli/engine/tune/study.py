"""Opening a study that fits the request (or making it), and showing an existing one's trials.

A study remembers what it tunes (the data and the training subset) and the kind
of each parameter it searched; a request for other data or other kinds is
refused before any trial runs. Nothing here prints; Optuna and SQLAlchemy are
imported only when a storage is opened.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.errors import BadValue
from lenet_cli.core.tune_levers import LEVERS
from lenet_cli.engine.tune.records import TrialRecord, trial_records
from lenet_cli.engine.tune.request import (
    DEFAULT_TRIALS,
    TuneRequest,
    check_url,
    dataset_label,
    default_storage,
    shown_url,
    study_name,
    tune_root,
)
from lenet_cli.engine.tune.storage import OpenStudy, connect, load_optuna
from lenet_cli.store import runs

# the study's user attribute: what it tunes (dataset, training subset), checked when it is opened again
LENET_ATTR = "lenet"


def _study_names(storage) -> list[str]:
    return [summary.study_name for summary in storage.get_all_studies()]


def _fixed_settings(request: TuneRequest) -> dict[str, Any]:
    """What every trial of a study must share to be compared: the data and the training subset."""
    return {
        "dataset": dataset_label(request.dataset),
        "train_limit": request.train_limit,
        "validation_size": request.validation_size,
    }


def _check_study(study, name: str, request: TuneRequest, shown: str, space: tune_space.Space) -> None:
    """An existing study must tune the same data the same way, and with parameters of the same kinds.

    Raises:
        BadValue: another dataset or training subset (field ``study``), or a space whose entries the study
            recorded as another kind of distribution (field ``space``).
    """
    optuna = load_optuna()
    settings = study.user_attrs.get(LENET_ATTR)
    if not isinstance(settings, dict):
        raise BadValue("study", f"study {name!r} in {shown} was not made by lenet tune; choose another study")
    for key, value in _fixed_settings(request).items():
        if settings.get(key) != value:
            raise BadValue(
                "study",
                f"study {name!r} in {shown} tunes with {key} {settings.get(key)}, not {value}; "
                f"give the same {key} to continue it, or choose another study",
            )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise BadValue(
            "study", f"study {name!r} in {shown} minimises its objective; lenet tune maximises validation accuracy"
        )
    seen: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        seen.update(trial.distributions)
    for option, distribution in seen.items():
        param = space.get(option)
        if param is None or isinstance(param, tune_space.Fixed):
            continue
        wanted = _distribution(param, option)
        try:
            optuna.distributions.check_distribution_compatibility(distribution, wanted)
        except ValueError:
            raise BadValue(
                "space",
                f"{option}: study {name!r} searched it as {_describe_distribution(distribution)}; "
                f"a study keeps each parameter's kind (and a list its choices): use another study",
            ) from None


def _distribution(param: tune_space.Param, option: str):
    optuna = load_optuna()
    if isinstance(param, tune_space.Choice):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    assert isinstance(param, tune_space.Range)
    if LEVERS[option].kind is int:
        return optuna.distributions.IntDistribution(
            int(param.low), int(param.high), log=param.log, step=int(param.step or 1)
        )
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def _describe_distribution(distribution) -> str:
    if hasattr(distribution, "choices"):
        return "choices " + " | ".join(map(str, distribution.choices))
    return f"a range {distribution.low:g}..{distribution.high:g}"


def _sampler(request: TuneRequest, local: bool, finished_before: int):
    """TPE, multivariate; seeded for a local study (continuing at a seed that depends on its history), from the OS for a shared one.

    Workers of a shared study must not draw the same random start-up trials, and
    ``constant_liar`` keeps them from converging on one point while trials run.
    """
    optuna = load_optuna()
    target = request.target or DEFAULT_TRIALS
    seed = request.seed + finished_before if local else None
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(3, min(10, target // 4)), multivariate=True, constant_liar=not local
    )


def _pruner(name: str, max_epochs: int):
    optuna = load_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)  # never on the first epoch
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs), reduction_factor=3)
    return optuna.pruners.NopPruner()


def _max_epochs(space: tune_space.Space) -> int:
    param = space["epochs"]
    if isinstance(param, tune_space.Range):
        return int(param.high)
    if isinstance(param, tune_space.Choice):
        return int(max(param.choices))
    return int(param.value)


def _earlier_trials(trials_dir: Path) -> str | None:
    """What a study folder left by another database holds (``fashion``'s trials), or None when it holds none."""
    if not trials_dir.is_dir() or not any(trials_dir.iterdir()):
        return None
    for config_file in sorted(trials_dir.glob("trial-*/" + runs.CONFIG_FILE)):
        config = runs.read_json_or_none(config_file)
        if isinstance(config, dict) and isinstance(config.get("dataset"), str):
            return f"trials of {dataset_label(config['dataset'])}"
    return "files"


def open_study(request: TuneRequest, space: tune_space.Space) -> OpenStudy:
    """Connect to the storage and open the study, or make it; an existing one must fit the request.

    Raises:
        BadValue: a bad storage URL, a study of other data or made by another program, a space the study cannot
            take, or a trials folder left by a study kept elsewhere.
    """
    optuna = load_optuna()
    name = study_name(request)
    url = request.storage or default_storage(request)
    shown = shown_url(url)
    check_url(url, default=request.storage is None)
    trials_dir = tune_root(request.runs_dir) / name
    earlier = _earlier_trials(trials_dir)
    local_file = Path(url.removeprefix("sqlite:///")) if request.storage is None else None
    if earlier and local_file is not None and not local_file.is_file():
        raise BadValue(
            "study",
            f"{str(trials_dir)!r} holds {earlier} of a study {name!r} kept in another database than {shown}; "
            f"give its storage (or its dataset), or choose another study",
        )
    if local_file is not None:
        local_file.parent.mkdir(parents=True, exist_ok=True)
    storage = connect(url, request.heartbeat)
    local = url.startswith("sqlite")
    names = _study_names(storage)
    if name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        _check_study(study, name, request, shown, space)
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(request, local, len(study.get_trials(deepcopy=False))),
            pruner=_pruner(request.pruner, _max_epochs(space)),
        )
        return OpenStudy(study, name, url, shown, created=False)
    if earlier:
        raise BadValue(
            "study",
            f"{str(trials_dir)!r} holds {earlier} of a study {name!r} kept in another database than {shown}; "
            f"give its storage, move that folder away, or choose another study",
        )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=_sampler(request, local, 0),
        pruner=_pruner(request.pruner, _max_epochs(space)),
    )
    import sqlalchemy.exc

    try:
        if LENET_ATTR not in study.user_attrs:
            study.set_user_attr(LENET_ATTR, _fixed_settings(request))
    except sqlalchemy.exc.IntegrityError:  # another worker set it in the same instant
        pass
    _check_study(study, name, request, shown, space)  # also when another worker made it a moment ago
    return OpenStudy(study, name, url, shown, created=True)


def show(request: TuneRequest, find: bool = False) -> tuple[OpenStudy, list[TrialRecord]]:
    """The study's trials so far, best first, without training or creating anything (``lenet tune --show``).

    Args:
        request: Names the study and its storage as a search would.
        find: Look for the study among the local study files (``<runs>/tune/*.db``) instead of the dataset's:
            the command line does when given neither ``--dataset`` nor ``--storage``.

    Raises:
        BadValue: no such database or study.
    """
    if find and request.storage is None:
        request = _locate_local_study(request)
    opened = _open_for_show(request, only_one=find and request.study is None)
    return opened, trial_records(opened.study)


def _open_for_show(request: TuneRequest, only_one: bool = False) -> OpenStudy:
    """Open an existing study; with ``only_one``, the storage's only study whatever its name."""
    optuna = load_optuna()
    name = study_name(request)
    url = request.storage or default_storage(request)
    shown = shown_url(url)
    check_url(url, default=request.storage is None)
    if request.storage is None and not Path(url.removeprefix("sqlite:///")).is_file():
        raise BadValue(
            "study",
            f"no study database {url.removeprefix('sqlite:///')!r} yet; a search on dataset "
            f"{dataset_label(request.dataset)} makes it",
        )
    storage = connect(url, request.heartbeat)
    names = _study_names(storage)
    if only_one and len(names) == 1:
        name = names[0]
    if name not in names:
        raise BadValue(
            "study", f"no study {name!r} in {shown} (studies there: {', '.join(names) if names else 'none'})"
        )
    return OpenStudy(optuna.load_study(study_name=name, storage=storage), name, url, shown, created=False)


def _locate_local_study(request: TuneRequest) -> TuneRequest:
    """Find the study among ``<runs>/tune/*.db``: the one named ``study``, or the only one there is."""
    found: list[tuple[str, Path]] = []
    for path in sorted(tune_root(request.runs_dir).glob("*.db")):
        try:
            storage = connect(f"sqlite:///{path.as_posix()}", request.heartbeat)
        except BadValue:
            continue
        found += [(name, path) for name in _study_names(storage)]
    wanted = [(name, path) for name, path in found if request.study in (None, name)]
    if len(wanted) == 1:
        name, path = wanted[0]
        return dataclasses.replace(request, dataset=path.stem, study=name, storage=f"sqlite:///{path.as_posix()}")
    listing = ", ".join(f"{name} ({path})" for name, path in found) or "none"
    if not wanted:
        what = f"no study {request.study!r}" if request.study else "no study"
        raise BadValue(
            "study",
            f"{what} under {str(tune_root(request.runs_dir))!r} (studies: {listing}); give its dataset or storage",
        )
    raise BadValue(
        "study", f"several studies under {str(tune_root(request.runs_dir))!r}: {listing}; choose one by its study name"
    )
