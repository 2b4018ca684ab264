"""Credentials after provisioning: the in-process rotator (`local`), the rotation function driven
and watched from the CLI (`remote`), the function's reproducible archive (`package`) and the audit
that proves no credential in the state still works (`audit`)."""
