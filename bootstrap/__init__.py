"""What runs around the Pulumi program: the offline plan, and later deploy, rotation and audit."""
