"""What one execution does: the state machine, its input checks, the ETL cluster, the SageMaker jobs, registration."""
