"""Every environment variable lenet reads, named once.

Each is documented in README (Data, Runs, Debugging); the option that
overrides it, where there is one, is named beside it.
"""

DATA_DIR_ENV = "LENET_DATA_DIR"  # --data-dir
VERIFY_ENV = "LENET_VERIFY_CHECKSUMS"  # 0: accept deliberately modified or synthetic IDX files
RUNS_DIR_ENV = "LENET_RUNS_DIR"  # --runs-dir
DEBUG_ENV = "LENET_DEBUG"  # --debug
TF_LOG_ENV = "LENET_TF_LOG"  # 1: let TensorFlow's native logs through
CPU_DEVICES_ENV = "LENET_CPU_DEVICES"  # --devices
# --mlflow: MLflow's own variable, so a team's setting reaches lenet too
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
