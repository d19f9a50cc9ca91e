"""The VPC of the jobs: public subnets for the EMR nodes, isolated subnets for SageMaker jobs in VPC mode.

No NAT gateway (nothing bills while idle). EMR nodes need the internet for the bootstrap action's
pip install; their EMR-managed security groups admit no inbound traffic from it. SageMaker jobs in
VPC mode reach S3 only, through the gateway endpoint.
"""

from __future__ import annotations

from aws_cdk import Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

# AmazonEMRServicePolicy_v2 acts only on clusters, and creates security groups only in VPCs, carrying
# this tag (=true); the subnet has it too.
EMR_MANAGED_POLICY_TAG = "for-use-with-amazon-emr-managed-policies"


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, flow_log_bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="emr", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="jobs", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
        )
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_s3(flow_log_bucket, "vpc-flow-logs/")
        )
        self.emr_subnet = self.vpc.public_subnets[0]
        Tags.of(self.vpc.node.default_child).add(EMR_MANAGED_POLICY_TAG, "true")
        Tags.of(self.emr_subnet).add(EMR_MANAGED_POLICY_TAG, "true")
        self.job_subnets = self.vpc.isolated_subnets
        # No inbound rule: training is one instance (all its GPUs through MirroredStrategy).
        self.job_security_group = ec2.SecurityGroup(
            self,
            "JobSecurityGroup",
            vpc=self.vpc,
            allow_all_outbound=True,
            description="SageMaker jobs in VPC mode - no inbound traffic",
        )
