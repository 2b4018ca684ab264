"""The `awskms://` secrets provider of the double: the data key is wrapped and unwrapped by KMS, as
the CLI does when it sets up secrets (pkg/secrets/cloud/manager.go in pulumi/pulumi):

- `stack init --secrets-provider awskms://<key>?region=<r>` makes a fresh 32-byte data key, has KMS
  encrypt it (`generateNewDataKey`) and records base64(ciphertext) as `encryptedkey`;
- every command that touches secrets has KMS decrypt `encryptedkey` (`newCloudSecretsManager`).

The KMS client is boto3's, so it honours the same environment as the CLI's AWS SDK (credentials,
AWS_ENDPOINT_URL[_KMS], AWS_REGION): tests point it at a moto server (fixture.kms_endpoint). Without
credentials it fails like the CLI's aws-sdk-go-v2 credential chain does.
"""

from __future__ import annotations

import base64
import os
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.pulumi_double.backend import CliError

PREFIX = "getting secrets manager: "
NO_CREDENTIALS = ("secrets (code=Unknown): get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role "
                  "found, operation error ec2imds: GetMetadata, request canceled, context deadline exceeded")
CREDENTIAL_SOURCES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def _client(url: str, env: dict[str, str]) -> tuple[Any, str]:
    parsed = urlparse(url)
    key_id = parsed.netloc + parsed.path  # gocloud.dev awskms: awskms://alias/name -> "alias/name"
    if not key_id:
        raise CliError(f"{PREFIX}unable to parse the secrets provider URL: no key ID in {url!r}")
    if not any(env.get(k) for k in CREDENTIAL_SOURCES):
        raise CliError(PREFIX + NO_CREDENTIALS)
    import boto3

    region = (parse_qs(parsed.query).get("region") or [""])[0] or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    endpoint = env.get("AWS_ENDPOINT_URL_KMS") or env.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().client("kms", region_name=region, endpoint_url=endpoint), key_id


def _call(what: str, fn: Any, **kwargs: Any) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return dict(fn(**kwargs))
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        request_id = exc.response.get("ResponseMetadata", {}).get("RequestId", "")
        raise CliError(f"{PREFIX}secrets (code=Unknown): operation error KMS: {what}, https response error StatusCode: {status}, "
                       f"RequestID: {request_id}, {err.get('Code', 'Error')}: {err.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise CliError(f"{PREFIX}secrets (code=Unknown): operation error KMS: {what}, {exc}") from None


def new_encrypted_key(url: str, env: dict[str, str]) -> str:
    """`encryptedkey` for a new stack: a random data key wrapped by the KMS key."""
    client, key_id = _client(url, env)
    out = _call("Encrypt", client.encrypt, KeyId=key_id, Plaintext=os.urandom(32))
    return base64.b64encode(out["CiphertextBlob"]).decode()


def data_key(url: str, encrypted_key: str, env: dict[str, str]) -> bytes:
    """The plaintext data key of a stack (KMS Decrypt of `encryptedkey`)."""
    if not encrypted_key:
        raise CliError(f"{PREFIX}the stack's settings file has secretsprovider {url!r} but no encryptedkey")
    try:
        blob = base64.b64decode(encrypted_key, validate=True)
    except ValueError:
        raise CliError(f"{PREFIX}illegal base64 data in encryptedkey") from None
    client, key_id = _client(url, env)
    return bytes(_call("Decrypt", client.decrypt, CiphertextBlob=blob, KeyId=key_id)["Plaintext"])
