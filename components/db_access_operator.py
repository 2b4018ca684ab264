"""What an operator may do with the database access path, and nothing more (issue 28 item 7).

* A Session Manager document of our own, `<prefix>-db-tunnel`: port forwarding with the remote
  host and port fixed to this stack's database (AWS-StartPortForwardingSessionToRemoteHost takes
  any host as a parameter, so a session could reach anything the task can).
* An IAM policy the stack creates, `<prefix>-db-operator`, with ARNs that match the generated
  names: run and stop the access task, pass its two roles to ECS, start a session only on this
  cluster's tasks and only with that document (`ssm:SessionDocumentAccessCheck`, without which
  the default shell document stays allowed and ECS Exec's agent hands out a root shell), end
  one's own sessions, and the session key's GenerateDataKey (the client side of a KMS-encrypted
  session). Attach it to the operators' group or role; `python -m bootstrap tunnel` needs no more.

The document content and the statements are pure functions (tested without Pulumi), applied by
`DbAccess._operator_access` (components/db_access.py).
"""

from __future__ import annotations

from typing import Any

# The local port: 0 (choose one) or 1-65535. The only parameter left to the caller.
LOCAL_PORT_PATTERN = r"^([0-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"


def session_document(host: str, port: int, prefix: str) -> dict[str, Any]:
    """A Session document (schema 1.0, sessionType Port) forwarding a local port to `host:port` only;
    the shape of AWS-StartPortForwardingSessionToRemoteHost with host and portNumber fixed."""
    return {
        "schemaVersion": "1.0",
        "description": f"{prefix}: port forwarding to the database {host}:{port} only",
        "sessionType": "Port",
        "parameters": {
            "localPortNumber": {"type": "String", "description": "Port on the operator's machine (0: any free port)",
                                "allowedPattern": LOCAL_PORT_PATTERN, "default": "0"},
        },
        "properties": {"type": "LocalPortForwarding", "host": host, "portNumber": str(port), "localPortNumber": "{{ localPortNumber }}"},
    }


def operator_statements(*, partition: str, region: str, account: str, cluster: str, family: str, document_arn: str,
                        role_arns: list[str], key_arn: str) -> list[dict[str, Any]]:
    """The statements of the operator policy (IAM JSON, names from the stack)."""
    ecs = f"arn:{partition}:ecs:{region}:{account}"
    cluster_arn = f"{ecs}:cluster/{cluster}"
    tasks = f"{ecs}:task/{cluster}/*"
    return [
        {"Sid": "RunTheAccessTask", "Effect": "Allow", "Action": ["ecs:RunTask"], "Resource": [f"{ecs}:task-definition/{family}:*"],
         "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}}},
        {"Sid": "WatchAndStopIt", "Effect": "Allow", "Action": ["ecs:DescribeTasks", "ecs:StopTask"], "Resource": [tasks],
         "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}}},
        {"Sid": "PassItsRoles", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": sorted(role_arns),
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
        {"Sid": "PortForwardToTheDatabaseOnly", "Effect": "Allow", "Action": ["ssm:StartSession"], "Resource": [tasks, document_arn],
         "Condition": {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}},
        {"Sid": "EndOwnSessions", "Effect": "Allow", "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
         "Resource": [f"arn:{partition}:ssm:{region}:{account}:session/${{aws:userid}}-*"]},
        {"Sid": "EncryptTheSession", "Effect": "Allow", "Action": ["kms:GenerateDataKey"], "Resource": [key_arn]},
    ]
