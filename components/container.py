"""The app's container definition: a pure function of the settings and the database connection.

Hardened by default: non-root user, read-only root filesystem (task-local writable volumes only),
every Linux capability dropped, an init process, no privilege. The database password (and, unless
IAM auth fixes the user, the username) reach the container only through `secrets` from Secrets
Manager, read by the execution role at task start; TLS to the database is verify-full.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.app_database import DbConnection
from config import naming
from config.settings import ServiceSettings

CONTAINER_NAME = naming.APP_CONTAINER
# Where the image is expected to carry the RDS CA bundle
# (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem); PGSSLMODE=verify-full needs it.
DEFAULT_CA_BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem"
# Where ECS Exec's managed agent writes inside the container. AWS documents exec as unsupported
# with a read-only root filesystem (the agent exits soon after start); the reported working setup
# (aws/containers-roadmap#1359) gives these three paths task-local writable volumes: the agent's
# own directory and the SSM state and logs (their parents here, which cover them).
EXEC_AGENT_PATHS = {"ssm-lib": "/var/lib/amazon", "ssm-log": "/var/log/amazon", "managed-agents": "/managed-agents"}
# An image reference that can never be pulled: the task definition of a stack with no image yet
# (desired count 0 until the first release) must still name one.
NO_IMAGE_DIGEST = "sha256:" + "0" * 64


def health_check_command(settings: ServiceSettings) -> list[str] | None:
    """The container health check ECS runs inside the task, or None (the default).

    By default the load balancer's health check on `healthCheckPath` decides: a container check
    needs a probe binary inside the image, and slim or distroless images have no wget or curl, so
    a default probe would fail every deployment. `containerHealthCheck` names the user's own.
    """
    custom = settings.container_health_check.strip()
    if not custom or custom.lower() == "none":
        return None
    return ["CMD-SHELL", custom]


def container_definition(
    s: ServiceSettings, db: DbConnection, image: pulumi.Input[str], log_group_name: pulumi.Input[str], region: str, ca_bundle_path: str = DEFAULT_CA_BUNDLE
) -> dict[str, Any]:
    """The one container of the app's task definition (Outputs inside; json_dumps resolves them)."""
    iam_auth = db.iam_grant is not None
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        "user": s.container_user,
        "privileged": False,
        "readonlyRootFilesystem": True,
        "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
        "portMappings": [{"name": "http", "containerPort": s.container_port, "hostPort": s.container_port, "protocol": "tcp", "appProtocol": "http"}],
        "mountPoints": [{"sourceVolume": v, "containerPath": path, "readOnly": False} for v, path in writable_volumes(s).items()],
        # Connection settings only; the password comes from `secrets` below.
        "environment": [
            {"name": "PORT", "value": str(s.container_port)},
            {"name": "PGHOST", "value": db.host},
            {"name": "PGPORT", "value": pulumi.Output.from_input(db.port).apply(str)},
            {"name": "PGDATABASE", "value": db.dbname},
            # With IAM auth the user is fixed (the task role may connect as exactly that user);
            # otherwise it comes from the secret, which alternates users on every rotation.
            *([{"name": "PGUSER", "value": db.username}] if iam_auth else []),
            {"name": "PGSSLMODE", "value": "verify-full"},
            {"name": "PGSSLROOTCERT", "value": ca_bundle_path},
        ],
        # Username and password from the same secret version (JSON keys), read once at task start.
        "secrets": [
            *([] if iam_auth else [{"name": "PGUSER", "valueFrom": pulumi.Output.concat(db.secret_arn, ":username::")}]),
            {"name": "PGPASSWORD", "valueFrom": pulumi.Output.concat(db.secret_arn, ":password::")},
        ],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group_name,
                "awslogs-region": region,
                "awslogs-stream-prefix": CONTAINER_NAME,
                # Never block the app on a slow log pipe; buffer instead.
                "mode": "non-blocking",
                "max-buffer-size": "25m",
            },
        },
        "stopTimeout": 30,
    }
    command = health_check_command(s)
    if command:
        container["healthCheck"] = {"command": command, "interval": 30, "timeout": 5, "retries": 3, "startPeriod": min(s.health_check_grace_seconds, 300)}
    return container

def writable_volumes(s: ServiceSettings) -> dict[str, str]:
    """Writable task-local volumes -> container path: /tmp, and the SSM agent's paths with ECS Exec."""
    volumes = {"tmp": "/tmp"}
    if s.enable_execute_command:
        volumes.update(EXEC_AGENT_PATHS)
    return volumes
