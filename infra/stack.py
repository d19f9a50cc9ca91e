"""The one stack of the cloud half: storage, network, the ETL cluster, SageMaker jobs, the pipeline."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.etl_cluster import EtlCluster
from infra.network import Network
from infra.pipeline import Pipeline
from infra.prediction import BatchPrediction
from infra.settings import PipelineSettings
from infra.storage import Storage
from infra.training import SageMakerJobs

# Output names `cxr start/status/results` read from the deployed stack.
OUTPUT_RAW_BUCKET = "RawBucket"
OUTPUT_DATASETS_BUCKET = "DatasetsBucket"
OUTPUT_ARTIFACTS_BUCKET = "ArtifactsBucket"
OUTPUT_ACCESS_LOGS_BUCKET = "AccessLogsBucket"
OUTPUT_STATE_MACHINE = "StateMachineArn"
OUTPUT_LOG_GROUP = "StateMachineLogGroup"


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
        self.prediction = BatchPrediction(self, "Prediction", jobs=self.jobs)
        outputs = {
            OUTPUT_RAW_BUCKET: (self.storage.raw.bucket_name, "raw X-ray sources (cxr upload-data)"),
            OUTPUT_DATASETS_BUCKET: (self.storage.datasets.bucket_name, "ETL outputs: datasets/<key>/"),
            OUTPUT_ARTIFACTS_BUCKET: (
                self.storage.artifacts.bucket_name,
                "models, evaluations, reports: runs/<experiment>/<run id>/; EMR logs: logs/emr/",
            ),
            OUTPUT_ACCESS_LOGS_BUCKET: (
                self.storage.access_logs.bucket_name,
                "S3 server access and VPC flow logs",
            ),
            OUTPUT_STATE_MACHINE: (
                self.pipeline.state_machine.state_machine_arn,
                "one execution per experiment run",
            ),
            OUTPUT_LOG_GROUP: (self.pipeline.log_group.log_group_name, "the state machine's execution log"),
        }
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
