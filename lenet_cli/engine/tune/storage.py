"""Where a study lives: an Optuna RDB storage with heartbeats, connected once, and the one line said when it goes away.

A study is kept in a SQLite file by default (``<runs>/tune/<dataset>.db``), or
a PostgreSQL or MySQL database that any number of workers on any machines
share. Every storage sends heartbeats for running trials and queues a dead
worker's trial again (Optuna's retry callback). Optuna and SQLAlchemy are
imported only when a storage is opened.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from typing import Any

from lenet_cli.core.errors import BadValue, LenetError, StorageLost
from lenet_cli.engine.tune.events import TuneInterrupted
from lenet_cli.engine.tune.request import DEFAULT_HEARTBEAT, MAX_RETRIES, shown_url


@dataclass
class OpenStudy:
    """A study opened for a search, or to show its trials."""

    study: Any  # optuna.Study
    name: str
    url: str  # as given (None-free), to connect again
    shown: str
    created: bool
    tracker: Any = None  # the search's MLflow parent run (lenet_cli.engine.tracking.RunTracker), once a search starts


def load_optuna():
    """Optuna, quiet: its own log lines and experimental-feature warnings are not for lenet's users."""
    import warnings

    try:
        import optuna
    except ModuleNotFoundError:
        from lenet_cli.core.errors import MissingExtra

        raise MissingExtra(
            "lenet tune needs Optuna: pip install 'lenet-cli[tune]'", hint="pip install 'lenet-cli[tune]'"
        ) from None
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _driver_url(url: str) -> str:
    """``postgresql://`` through psycopg 3 (the tune extra's driver) when psycopg2 is absent; anything else as given."""
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if (
        parsed.drivername == "postgresql"
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def connect(url: str, heartbeat: int = DEFAULT_HEARTBEAT):
    """An Optuna RDB storage with heartbeats, whose dead workers' trials are queued again.

    Raises:
        BadValue: the URL is malformed, names a database that cannot be reached or opened, or needs a driver
            that is not installed (field ``storage``).
    """
    optuna = load_optuna()
    import sqlalchemy.exc

    shown = shown_url(url)
    try:
        driver_url = _driver_url(url)
        kwargs: dict[str, Any] = {}
        if driver_url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 60}}  # the heartbeat thread and the trial share the file
        elif driver_url.startswith("postgresql"):
            kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
        elif driver_url.startswith("mysql"):
            kwargs = {"pool_pre_ping": True}
        for attempt in range(3):
            try:
                return _heartbeat_tolerant_storage()(
                    driver_url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=MAX_RETRIES
                    ),
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == 2:
                    raise
                time.sleep(
                    0.5 + attempt
                )  # workers that start together race to create a new database's tables: the loser waits
        raise AssertionError("unreachable")
    except (ModuleNotFoundError, ImportError) as exc:
        raise BadValue(
            "storage",
            f"{shown}: its database driver is not installed ({exc}); PostgreSQL works with the "
            f"tune extra (pip install 'lenet-cli[tune]'), MySQL with pip install pymysql and mysql+pymysql://",
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise BadValue(
            "storage",
            f"{shown}: cannot open the study database ({detail}); check the URL, that the "
            f"server runs and that the database exists",
        ) from None


@functools.cache
def _heartbeat_tolerant_storage():
    """Optuna's RDB storage, but a heartbeat that cannot reach the database is skipped, not a thread dying with a traceback.

    The trial's own next write (its epoch's score) meets the same lost database, and the search stops there in one
    line (:func:`storage_lost`); a database back by then has missed a heartbeat, not the trial.
    """
    load_optuna()  # quiet, and a missing extra said first
    from optuna.storages import RDBStorage

    class HeartbeatTolerantStorage(RDBStorage):
        def record_heartbeat(self, trial_id: int) -> None:
            try:
                super().record_heartbeat(trial_id)
            except Exception as exc:
                if _connection_failure(exc) is None:
                    raise

    return HeartbeatTolerantStorage


def _connection_failure(exc: BaseException | None):
    """The SQLAlchemy error that says the database cannot be reached, found in ``exc`` or in what it was raised from or during.

    Optuna wraps a failed commit in its own error, and a failed write while it records a failed trial ends in an
    unrelated one (an UnboundLocalError in Optuna 4); the lost connection is further down the chain.
    """
    import sqlalchemy.exc

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or (
            isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
        ):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def storage_lost(exc: BaseException, opened: OpenStudy) -> StorageLost | None:
    """A :class:`StorageLost` naming the study's database (password hidden) when ``exc`` comes from losing it; None otherwise."""
    failure = _connection_failure(exc)
    if failure is None:
        return None
    lines = str(getattr(failure, "orig", None) or failure).strip().splitlines()
    detail = lines[0][:200] if lines else type(failure).__name__
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        password = make_url(opened.url).password
        if password:
            detail = detail.replace(str(password), "***")
    return StorageLost(
        f"the study's database {opened.shown} went away ({detail}); run the same command again once it is back "
        f"(a trial left running is failed when its heartbeats lapse, and retried)"
    )


@contextlib.contextmanager
def storage_guard(opened: OpenStudy):
    """The study's database going away mid-study, said in one line (:class:`~lenet_cli.core.errors.StorageLost`), not in Optuna's traces."""
    try:
        yield
    except (LenetError, TuneInterrupted):
        raise
    except Exception as exc:
        lost = storage_lost(exc, opened)
        if lost is None:
            raise
        raise lost from None
