"""Lambda handler: terminate the EMR clusters of a Step Functions execution that ended badly.

Step Functions does not terminate a cluster when an execution is stopped (ABORTED), times out or fails
outside the catch paths; without this, the cluster bills until idle auto-termination. An EventBridge
rule on the state machine's status changes invokes this with the event; the clusters to terminate are
those tagged ``cxr-execution=<execution ARN>`` by the CreateCluster state. Plain boto3: no CDK import.
"""

from __future__ import annotations

from typing import Any

EXECUTION_TAG = "cxr-execution"
CLUSTER_NAME_PREFIX = "cxr-etl-"
ENDED_BADLY = ("ABORTED", "TIMED_OUT", "FAILED")
ACTIVE_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]


def clusters_of_execution(emr: Any, execution_arn: str) -> list[str]:
    """Ids of the active clusters tagged with this execution (only cxr-etl-* clusters are described)."""
    found = []
    for page in emr.get_paginator("list_clusters").paginate(ClusterStates=ACTIVE_STATES):
        for summary in page["Clusters"]:
            if not summary["Name"].startswith(CLUSTER_NAME_PREFIX):
                continue
            tags = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"].get("Tags", [])
            if {"Key": EXECUTION_TAG, "Value": execution_arn} in tags:
                found.append(summary["Id"])
    return found


def handler(event: dict[str, Any], context: Any = None, emr: Any = None) -> dict[str, Any]:
    """Terminates the execution's clusters; an event of another status terminates nothing."""
    detail = event.get("detail", {})
    if detail.get("status") not in ENDED_BADLY:
        return {"terminated": [], "reason": f"status {detail.get('status')!r} needs no cleanup"}
    if emr is None:
        import boto3

        emr = boto3.client("emr")
    clusters = clusters_of_execution(emr, detail["executionArn"])
    if clusters:
        emr.terminate_job_flows(JobFlowIds=clusters)
    print(f"execution {detail['executionArn']} {detail['status']}: terminated {clusters or 'no cluster'}")
    return {"terminated": clusters}
