"""Every size and switch of the cloud half, read from CDK context: cdk.json holds the values (the paper's
setup) and is the only place they are written down.

``cdk synth -c emrCoreInstanceCount=3`` passes strings, cdk.json passes JSON values: both are accepted,
and a bad value stops the synth with a message naming the context key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from constructs import Node

# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class SettingsError(ValueError):
    """A context value that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class PipelineSettings:
    emrReleaseLabel: str
    emrMasterInstanceType: str
    emrMasterInstanceCount: int
    emrCoreInstanceType: str
    emrCoreInstanceCount: int
    emrCoreVolumeSizeGb: int
    emrIdleTimeoutMinutes: int
    emrInTransitCertificatesUri: str
    etlStepTimeoutMinutes: int
    trainingInstanceType: str
    trainingInstanceCount: int
    trainingVolumeSizeGb: int
    trainingExpectedMinutes: int
    trainingRuntimeMargin: int
    useSpot: bool
    maxWaitSeconds: int
    networkIsolation: bool
    trainingInVpc: bool
    modelConcurrency: int
    evaluationInstanceType: str
    evaluationMaxRuntimeSeconds: int
    reportInstanceType: str
    logRetentionDays: int
    temporaryObjectDays: int

    @classmethod
    def from_context(cls, node: Node) -> PipelineSettings:
        missing = [f.name for f in fields(cls) if node.try_get_context(f.name) is None]
        if missing:
            raise SettingsError(
                f"context {', '.join(missing)} missing: run from the repository root, whose cdk.json "
                "holds every setting, or pass -c KEY=VALUE"
            )
        settings = cls(**{f.name: _coerce(f.name, node.try_get_context(f.name), f.type) for f in fields(cls)})
        settings.check()
        return settings

    @property
    def maxRuntimeSeconds(self) -> int:
        """A training job's stop condition: the expected duration times the margin, so a hung job costs a
        bounded amount (at 24 h, one paper experiment could bill about $1,400 of ml.p3.8xlarge)."""
        return self.trainingExpectedMinutes * 60 * self.trainingRuntimeMargin

    def check(self) -> None:
        for name in (
            "emrMasterInstanceCount",
            "emrCoreInstanceCount",
            "trainingInstanceCount",
            "modelConcurrency",
            "trainingExpectedMinutes",
            "trainingRuntimeMargin",
            "etlStepTimeoutMinutes",
            "trainingVolumeSizeGb",
            "emrCoreVolumeSizeGb",
            "logRetentionDays",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"context '{name}' must be at least 1, got {getattr(self, name)}")
        if self.trainingInstanceCount > 1:
            # Refused rather than made real: the training code reads no host list (resourceconfig.json),
            # so N hosts would each train the same model alone and bill N times. More GPUs per job are
            # what an instance type gives (ml.p3.8xlarge: 4 V100 through MirroredStrategy).
            raise SettingsError(
                f"context 'trainingInstanceCount' is {self.trainingInstanceCount}: training runs on one "
                "instance (its GPUs mirrored); a larger instance type, not more instances, gives it more "
                "GPUs. Seeds (training.seeds) run as separate jobs in parallel (modelConcurrency)"
            )
        if not self.emrReleaseLabel.startswith("emr-5."):
            raise SettingsError(
                f"context 'emrReleaseLabel' is {self.emrReleaseLabel!r}: the ETL is written for "
                "Spark 2.4 / Python 3.7 (EMR 5.x, the paper's emr-5.32.0)"
            )
        if not 1 <= self.emrIdleTimeoutMinutes <= 7 * 24 * 60:
            raise SettingsError(
                "context 'emrIdleTimeoutMinutes' must be 1..10080 (EMR's idle auto-termination)"
            )
        if self.useSpot and self.maxWaitSeconds < self.maxRuntimeSeconds:
            raise SettingsError(
                f"context 'maxWaitSeconds' must be >= {self.maxRuntimeSeconds} (trainingExpectedMinutes x 60 x "
                "trainingRuntimeMargin) when 'useSpot' is on"
            )
        if self.logRetentionDays not in LOG_RETENTION_DAYS:
            raise SettingsError(
                f"context 'logRetentionDays' is {self.logRetentionDays}; CloudWatch accepts one of "
                f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        if self.emrInTransitCertificatesUri and not self.emrInTransitCertificatesUri.startswith("s3://"):
            raise SettingsError(
                "context 'emrInTransitCertificatesUri' must be the s3:// URI of a zip of PEM files"
            )


def _coerce(name: str, value: Any, kind: Any) -> Any:
    kind = {"str": str, "int": int, "bool": bool}.get(kind, kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
    elif kind is int:
        try:
            if not isinstance(value, bool) and float(value) == int(float(value)):
                return int(float(value))
        except ValueError:
            pass
    elif isinstance(value, str):
        return value
    raise SettingsError(f"context '{name}' is {value!r}; expected a {kind.__name__} (see cdk.json)")
