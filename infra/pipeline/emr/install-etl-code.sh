#!/bin/bash
# EMR bootstrap action, run on every node after jobs/etl/emr-bootstrap.sh (the pinned Python 3.7 packages):
# copies the job code and writes the command an EMR step runs with exactly `cxr etl`'s arguments.
# Arguments: PACKAGE_ZIP_URI SCRIPT_URI COMMAND_PATH REGION
# The region goes to driver and executors: they read images from S3 with boto3 (jobs/etl/blobs.py),
# which does not look the region up itself.
set -euo pipefail
package_uri="$1"
script_uri="$2"
command_path="$3"
region="$4"
home="$(dirname "$command_path")"

mkdir -p "$home"
aws s3 cp --only-show-errors "$package_uri" "$home/jobs.zip"
aws s3 cp --only-show-errors "$script_uri" "$home/spark_job.py"

cat > "$command_path" <<COMMAND
#!/bin/bash
# The EMR step runs this with exactly the arguments of \`cxr etl\` (see jobs/plan/pipeline_input.py).
export AWS_DEFAULT_REGION=$region
exec spark-submit --deploy-mode client --conf spark.executorEnv.AWS_DEFAULT_REGION=$region \\
  --py-files $home/jobs.zip $home/spark_job.py "\$@"
COMMAND
chmod 755 "$command_path"
