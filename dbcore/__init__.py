"""The small core the CLI and the rotation function share: the password policy, SCRAM verifiers,
how a database connection is built (TLS, timeouts), the ADMIN OPTION check, the rotation protocol's
vocabulary (`secret`), the RDS master-password admin and the one polling loop. It imports neither
`bootstrap` nor `rotation_function` (nor pulumi or yaml): the function's archive ships it whole."""
