"""Smoke deployment of the marketplace's data resources into moto's CloudFormation.

    python deploy_data.py <endpoint> <template.json> <outputs.env> [<tmf-api binary>]

Creates the stack from the template CDK synthesized (DataStack: key, table, queues), waits
for CREATE_COMPLETE, checks that the deployed resources carry the settings the template
asks for (so a template moto silently half-applied fails here), exercises the FIFO queue's
redrive, and writes the stack outputs as KEY=value lines for further tests. Given a tmf-api
binary (a host build), it then runs it as the function runs on AWS -- DynamoDB store on the
deployed table, hub notifications to the deployed queue -- and checks that a created entity
is served back, that its outbox entry is in the table and that the notification reached the
queue.
Needs the boto3 that moto's venv brings; credentials are moto's fake ones.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

STACK = "DomeData"
REGION = "us-east-1"


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def fail(message):
    print(f"smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def deploy(cfn, template_body):
    cfn.create_stack(StackName=STACK, TemplateBody=template_body)
    deadline = time.time() + 120
    while time.time() < deadline:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if status.endswith("FAILED") or status.startswith("ROLLBACK"):
            events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
            reasons = [f'{e["LogicalResourceId"]}: {e.get("ResourceStatusReason", "")}' for e in events if "FAILED" in e["ResourceStatus"]]
            fail(f"stack {status}: {reasons}")
        time.sleep(0.5)
    fail("stack not complete within 120 s")


def check_table(ddb, name):
    table = ddb.describe_table(TableName=name)["Table"]
    keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
    if keys != {"PK": "HASH", "SK": "RANGE"}:
        fail(f"table keys {keys}")
    if table.get("BillingModeSummary", {}).get("BillingMode") != "PAY_PER_REQUEST":
        fail(f"table billing {table.get('BillingModeSummary')}")
    # Encryption and point-in-time recovery are not checked here: moto's CloudFormation does
    # not apply SSESpecification or PointInTimeRecoverySpecification (describe calls show
    # none); the assertion tests check both in the template instead.
    if not table.get("StreamSpecification", {}).get("StreamEnabled"):
        fail("table stream not enabled")


def check_replication_queue(sqs, queue_url, dlq_url):
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    if attrs.get("FifoQueue") != "true" or not attrs.get("KmsMasterKeyId"):
        fail(f"replication queue attributes {attrs}")
    redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
    if int(redrive.get("maxReceiveCount", 0)) != 5:
        fail(f"replication queue redrive {redrive}")
    # A message received five times without being deleted must land in the dead-letter queue.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "0"})
    sqs.send_message(QueueUrl=queue_url, MessageBody='{"smoke": 1}', MessageGroupId="smoke")
    for _ in range(6):
        sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=1).get("Messages", [])
    if len(dead) != 1 or dead[0]["Body"] != '{"smoke": 1}':
        fail(f"message not redriven to the dead-letter queue: {dead}")
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=dead[0]["ReceiptHandle"])
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "360"})


def http(method, url, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


def check_tmf_api(binary, endpoint, outputs):
    token = "smoke-" + os.urandom(8).hex()
    with tempfile.TemporaryDirectory() as tmp:
        addr_file = os.path.join(tmp, "addr")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DOME_LISTEN": "127.0.0.1:0",
            "DOME_ADDR_FILE": addr_file,
            "DOME_STORE": "dynamodb",
            "DOME_TABLE": outputs["TableName"],
            "DOME_AUTH": "tokens",
            "DOME_API_TOKENS": token,
            "DOME_NOTIFY_QUEUE_URL": outputs["NotifyQueueUrl"],
            "DOME_CALLBACK_ALLOW_PRIVATE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        log = open(os.path.join(tmp, "tmf-api.log"), "w+", encoding="utf-8")
        process = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
        try:
            deadline = time.time() + 60
            while not (os.path.exists(addr_file) and open(addr_file, encoding="utf-8").read().strip()):
                if process.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    fail(f"tmf-api did not start: {log.read()[-2000:]}")
                time.sleep(0.1)
            base = f"http://{open(addr_file, encoding='utf-8').read().strip()}/tmf-api/productCatalogManagement/v4"
            status, _ = http("POST", f"{base}/hub", {"callback": "http://127.0.0.1:9/smoke"}, token)
            if status != 201:
                fail(f"hub registration answered {status}")
            status, created = http("POST", f"{base}/productOffering", {"name": "smoke offering"}, token)
            if status != 201:
                fail(f"create answered {status}")
            status, read = http("GET", f"{base}/productOffering/{created['id']}")
            if status != 200 or read.get("name") != "smoke offering":
                fail(f"read back {status} {read}")
        finally:
            process.terminate()
            process.wait(timeout=30)
    ddb = client("dynamodb", endpoint)
    outbox = ddb.query(
        TableName=outputs["TableName"],
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "OUTBOX"}},
    )["Items"]
    if not any(item["SK"]["S"] != "COUNTER" for item in outbox):
        fail(f"no outbox entry in the deployed table: {outbox}")
    sqs = client("sqs", endpoint)
    messages = sqs.receive_message(QueueUrl=outputs["NotifyQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    if not any("ProductOfferingCreateEvent" in m["Body"] for m in messages):
        fail(f"no ProductOfferingCreateEvent on the deployed notification queue: {messages}")
    print("smoke: tmf-api served, stored and notified through the deployed table and queue", file=sys.stderr)


def main():
    if len(sys.argv) not in (4, 5):
        fail(__doc__)
    endpoint, template_file, outputs_file = sys.argv[1:4]
    with open(template_file, encoding="utf-8") as f:
        template_body = f.read()
    outputs = deploy(client("cloudformation", endpoint), template_body)
    for key in ("TableName", "NotifyQueueUrl", "ReplicationQueueUrl", "ReplicationDlqUrl"):
        if key not in outputs:
            fail(f"stack output {key} missing: {outputs}")
    check_table(client("dynamodb", endpoint), outputs["TableName"])
    check_replication_queue(client("sqs", endpoint), outputs["ReplicationQueueUrl"], outputs["ReplicationDlqUrl"])
    with open(outputs_file, "w", encoding="utf-8") as f:
        for key, value in sorted(outputs.items()):
            f.write(f"{key}={value}\n")
    print(f"smoke: stack {STACK} deployed and checked: {outputs}", file=sys.stderr)
    if len(sys.argv) == 5:
        check_tmf_api(sys.argv[4], endpoint, outputs)


if __name__ == "__main__":
    main()
