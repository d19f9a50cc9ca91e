"""The names of the deployed stack's outputs: written by infra/stack.py, read by the cloud commands.

CDK-free on purpose, so ``cxr start`` and the stack cannot disagree on a name without importing CDK.
"""

from __future__ import annotations

RAW_BUCKET = "RawBucket"
DATASETS_BUCKET = "DatasetsBucket"
ARTIFACTS_BUCKET = "ArtifactsBucket"
ACCESS_LOGS_BUCKET = "AccessLogsBucket"
STATE_MACHINE = "StateMachineArn"
LOG_GROUP = "StateMachineLogGroup"
TRAINING_IMAGE = "TrainingImageUri"
SETTINGS = "PipelineSettings"
PREDICTION_JOB = "PredictionJob"

ALL = (
    RAW_BUCKET,
    DATASETS_BUCKET,
    ARTIFACTS_BUCKET,
    ACCESS_LOGS_BUCKET,
    STATE_MACHINE,
    LOG_GROUP,
    TRAINING_IMAGE,
    SETTINGS,
    PREDICTION_JOB,
)
# What every cloud command needs; the others serve `cxr preflight` and people reading the console.
REQUIRED = (RAW_BUCKET, DATASETS_BUCKET, ARTIFACTS_BUCKET, STATE_MACHINE)

# Where `cxr stage-weights` puts backbone weights in the artifacts bucket; the training jobs' `weights`
# channel reads this prefix.
WEIGHTS_PREFIX = "weights/"
