"""The one stack of the cloud half: storage, network, the ETL cluster, SageMaker jobs, the pipeline."""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.pipeline.etl_cluster import PROJECT_TAG, EtlCluster
from infra.pipeline.state_machine import Pipeline
from infra.pipeline.training import SageMakerJobs
from infra.resources.cluster_cleanup import ClusterCleanup
from infra.resources.network import Network
from infra.resources.prediction import BatchPrediction
from infra.resources.storage import Storage
from infra.settings import PipelineSettings
from jobs.contracts import stack_outputs as names

# What `cxr preflight` needs to know of the deployed context (the instances one run starts at once).
PREFLIGHT_SETTINGS = (
    "trainingInstanceType",
    "trainingInstanceCount",
    "useSpot",
    "modelConcurrency",
    "evaluationInstanceType",
    "reportInstanceType",
    "emrMasterInstanceType",
    "emrMasterInstanceCount",
    "emrCoreInstanceType",
    "emrCoreInstanceCount",
)


class CxrPipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = PipelineSettings.from_context(self.node)
        self.storage = Storage(self, "Storage", temporary_object_days=self.settings.temporaryObjectDays)
        self.network = Network(self, "Network", flow_log_bucket=self.storage.access_logs)
        self.cluster = EtlCluster(self, "EtlCluster", settings=self.settings, storage=self.storage)
        self.jobs = SageMakerJobs(
            self, "SageMaker", settings=self.settings, storage=self.storage, network=self.network
        )
        self.pipeline = Pipeline(
            self,
            "Pipeline",
            settings=self.settings,
            storage=self.storage,
            network=self.network,
            cluster=self.cluster,
            jobs=self.jobs,
        )
        self.cleanup = ClusterCleanup(
            self,
            "ClusterCleanup",
            state_machine=self.pipeline.state_machine,
            key=self.storage.key,
            log_retention_days=self.settings.logRetentionDays,
            cluster_tag=PROJECT_TAG,
        )
        self.prediction = BatchPrediction(self, "Prediction", jobs=self.jobs)
        outputs = {
            names.RAW_BUCKET: (self.storage.raw.bucket_name, "raw X-ray sources (cxr upload-data)"),
            names.DATASETS_BUCKET: (self.storage.datasets.bucket_name, "ETL outputs: datasets/<key>/"),
            names.ARTIFACTS_BUCKET: (
                self.storage.artifacts.bucket_name,
                "models, evaluations, reports: runs/<experiment>/<run id>/; EMR logs: logs/emr/",
            ),
            names.ACCESS_LOGS_BUCKET: (
                self.storage.access_logs.bucket_name,
                "S3 server access and VPC flow logs",
            ),
            names.STATE_MACHINE: (
                self.pipeline.state_machine.state_machine_arn,
                "one execution per experiment run",
            ),
            names.LOG_GROUP: (self.pipeline.log_group.log_group_name, "the state machine's execution log"),
            names.TRAINING_IMAGE: (self.jobs.image.image_uri, "training/evaluation image (cxr preflight)"),
            names.SETTINGS: (
                json.dumps({key: getattr(self.settings, key) for key in PREFLIGHT_SETTINGS}, sort_keys=True),
                "deployed context the preflight checks quotas against",
            ),
        }
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
