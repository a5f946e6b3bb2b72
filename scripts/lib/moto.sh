# shellcheck shell=bash
# moto's S3-compatible server, shared by scripts/test, scripts/chaos and scripts/bench (sourced after
# scripts/lib/common.sh).

# need_moto: installs moto's server and boto3 with pip unless they are there.
need_moto() {
    need_pip "moto[server]" moto_server
    python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet boto3
}

# start_moto NAME HOST PORT BUCKET: starts moto on HOST:PORT (start_server NAME) with signature checks on: after
# INITIAL_NO_AUTH_ACTION_COUNT requests every request must be signed by a key it knows. The first three requests
# (unchecked) create an IAM user named BUCKET with an allow-all inline policy and its access key; the bucket BUCKET
# is created with that key. Sets MOTO_ACCESS_KEY_ID and MOTO_SECRET_ACCESS_KEY to the key.
start_moto() {
    local name=$1 host=$2 port=$3 bucket=$4 keys
    need_moto
    start_server "$name" env INITIAL_NO_AUTH_ACTION_COUNT=3 moto_server -H "$host" -p "$port"
    wait_for_port "$port" "$name" 30 "$host"
    keys=$(
        python3 - "http://$host:$port" "$bucket" <<'PYTHON'
import json, sys
import boto3
from botocore.config import Config
endpoint, bucket = sys.argv[1], sys.argv[2]
bootstrap = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bootstrap",
                 aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **bootstrap)
iam.create_user(UserName=bucket)
iam.put_user_policy(UserName=bucket, PolicyName="allow-all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName=bucket)["AccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"], config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=bucket)
print(key["AccessKeyId"], key["SecretAccessKey"])
PYTHON
    ) || fail "cannot create the IAM user and bucket on moto (log: $WORK_DIR/$name.log)"
    # shellcheck disable=SC2034 # read by the sourcing script
    read -r MOTO_ACCESS_KEY_ID MOTO_SECRET_ACCESS_KEY <<<"$keys"
}
