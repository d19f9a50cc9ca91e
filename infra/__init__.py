"""CDK constructs of the cloud half: storage, network, the EMR ETL, SageMaker jobs and the pipeline."""
