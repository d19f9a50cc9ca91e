#!/usr/bin/env python3
"""CDK app: `npx cdk synth` / `npx cdk deploy` (settings: cdk.json context, see docs/cloud.md)."""

import aws_cdk as cdk

from infra.nag import acknowledge_findings, add_nag_checks
from infra.stack import CxrPipelineStack

app = cdk.App()
acknowledge_findings(
    CxrPipelineStack(
        app, "CxrPipeline", description="cxr-pipeline: EMR ETL, SageMaker training, Step Functions"
    )
)
add_nag_checks(app)
app.synth()
