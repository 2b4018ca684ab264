"""The release ledger: one DynamoDB table per stack (components/migration.py `release_ledger`)
holding every release's record and the migration lock.

Items (partition key `pk` = the stack's prefix, sort key `sk`):
  - `release#<UTC time>`: one per release or rollback: tag, digest, task definition, outcome,
    who ran it, and the migration (task, exit code, duration, image) when one ran;
  - `lock`: the holder of the release lock (who, where, since, lease end, migration task).

The lock is a conditional write: taken only when absent or when its lease ended, so two releases
never migrate at once and a killed CLI's lock still names its holder until its lease ends (or
`--break-lock` removes it once its migration task is no longer running).
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.naming import release_table

LOCK = "lock"
RELEASE = "release#"


class LedgerError(RuntimeError):
    """One sentence for the user; exit status 1."""


def holder_name() -> str:
    """Who holds the lock, as a person on call reads it: user@host pid (CI: the job URL when known)."""
    ci = os.environ.get("GITHUB_RUN_ID") and f" ({os.environ.get('GITHUB_REPOSITORY', '')} run {os.environ['GITHUB_RUN_ID']})"
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}{ci or ''}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Migration:
    task_arn: str
    task_definition: str
    image: str
    exit_code: int | None
    duration_seconds: float
    stopped_reason: str = ""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


@dataclass
class ReleaseRecord:
    kind: str  # release | rollback
    tag: str
    digest: str
    at: str  # ISO UTC, also the sort key
    by: str
    outcome: str = "started"  # started | succeeded | failed
    reason: str = ""
    task_definition: str = ""
    migration: Migration | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def migrated(self) -> bool:
        """A migration task ran (whatever its exit): the schema may have changed."""
        return self.migration is not None and bool(self.migration.task_arn)


def _to_item(prefix: str, r: ReleaseRecord) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": prefix}, "sk": {"S": RELEASE + r.at}}
    for key, value in asdict(r).items():
        if key == "migration":
            if r.migration is not None:
                m = r.migration
                item["migration"] = {"M": {"task_arn": {"S": m.task_arn}, "task_definition": {"S": m.task_definition}, "image": {"S": m.image},
                                           "exit_code": {"N": str(m.exit_code)} if m.exit_code is not None else {"NULL": True},
                                           "duration_seconds": {"N": f"{m.duration_seconds:.1f}"}, "stopped_reason": {"S": m.stopped_reason}}}
        elif key == "extra":
            item["extra"] = {"M": {k: {"S": v} for k, v in r.extra.items()}}
        else:
            item[key] = {"S": str(value)}
    return item


def _from_item(item: Mapping[str, Any]) -> ReleaseRecord:
    s = {k: v.get("S", "") for k, v in item.items() if isinstance(v, dict) and "S" in v}
    migration = None
    if "migration" in item:
        m = item["migration"]["M"]
        code = m.get("exit_code", {})
        migration = Migration(m["task_arn"]["S"], m["task_definition"]["S"], m["image"]["S"], int(code["N"]) if "N" in code else None,
                              float(m["duration_seconds"]["N"]), m.get("stopped_reason", {}).get("S", ""))
    extra = {k: v["S"] for k, v in item.get("extra", {}).get("M", {}).items()}
    return ReleaseRecord(s.get("kind", "release"), s.get("tag", ""), s.get("digest", ""), s.get("at", ""), s.get("by", ""),
                         s.get("outcome", ""), s.get("reason", ""), s.get("task_definition", ""), migration, extra)


class Ledger:
    """The stack's release table through a boto3 DynamoDB client."""

    def __init__(self, dynamodb: Any, prefix: str, *, table: str = "", clock: Callable[[], float] = time.time):
        self.db, self.prefix, self.table, self.clock = dynamodb, prefix, table or release_table(prefix), clock

    def _missing(self) -> LedgerError:
        return LedgerError(f"the release table {self.table} does not exist; run `python -m bootstrap deploy --stack <stack>` "
                           "(or `up`) once so the stack creates it")

    # --- records -----------------------------------------------------------------------------

    def new_record(self, kind: str, tag: str, digest: str, by: str) -> ReleaseRecord:
        return ReleaseRecord(kind, tag, digest, iso(self.clock()), by)

    def save(self, record: ReleaseRecord) -> None:
        try:
            self.db.put_item(TableName=self.table, Item=_to_item(self.prefix, record))
        except self.db.exceptions.ResourceNotFoundException:
            raise self._missing() from None

    def history(self, limit: int = 50) -> list[ReleaseRecord]:
        """The newest `limit` records, newest first."""
        try:
            page = self.db.query(TableName=self.table, KeyConditionExpression="pk = :p AND begins_with(sk, :r)",
                                 ExpressionAttributeValues={":p": {"S": self.prefix}, ":r": {"S": RELEASE}}, ScanIndexForward=False, Limit=limit)
        except self.db.exceptions.ResourceNotFoundException:
            raise self._missing() from None
        return [_from_item(i) for i in page.get("Items") or []]

    # --- the lock ----------------------------------------------------------------------------

    def acquire(self, holder: str, lease_seconds: float) -> str:
        """Take the lock (absent or lease ended) and return its token, or raise naming the holder."""
        token, now = uuid.uuid4().hex, self.clock()
        item = {"pk": {"S": self.prefix}, "sk": {"S": LOCK}, "holder": {"S": holder}, "token": {"S": token},
                "since": {"S": iso(now)}, "expires": {"N": str(int(now + lease_seconds))}, "task_arn": {"S": ""}}
        try:
            self.db.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk) OR expires < :now",
                             ExpressionAttributeValues={":now": {"N": str(int(now))}})
        except self.db.exceptions.ConditionalCheckFailedException:
            held = self.lock_holder() or {}
            task = f", migration task {held['task_arn'].rsplit('/', 1)[-1]}" if held.get("task_arn") else ""
            raise LedgerError(f"another release holds the lock of {self.prefix}: {held.get('holder', '?')} since {held.get('since', '?')}{task} "
                              f"(lease ends {held.get('expires_at', '?')}); wait for it, or if that process is gone and its migration task "
                              "stopped, re-run with --break-lock") from None
        except self.db.exceptions.ResourceNotFoundException:
            raise self._missing() from None
        return token

    def lock_holder(self) -> dict[str, str] | None:
        try:
            item = self.db.get_item(TableName=self.table, Key={"pk": {"S": self.prefix}, "sk": {"S": LOCK}}, ConsistentRead=True).get("Item")
        except self.db.exceptions.ResourceNotFoundException:
            raise self._missing() from None
        if not item:
            return None
        expires = int(item["expires"]["N"])
        return {"holder": item["holder"]["S"], "since": item["since"]["S"], "task_arn": item.get("task_arn", {}).get("S", ""),
                "expires_at": iso(expires), "expired": str(expires < self.clock())}

    def note_task(self, token: str, task_arn: str) -> None:
        """Record the running migration task on our lock (so a breaker can check it stopped)."""
        self.db.update_item(TableName=self.table, Key={"pk": {"S": self.prefix}, "sk": {"S": LOCK}}, UpdateExpression="SET task_arn = :t",
                            ConditionExpression="#tok = :k", ExpressionAttributeNames={"#tok": "token"},
                            ExpressionAttributeValues={":t": {"S": task_arn}, ":k": {"S": token}})

    def release(self, token: str) -> None:
        """Give our lock back (never someone else's: the token must match)."""
        try:
            self.db.delete_item(TableName=self.table, Key={"pk": {"S": self.prefix}, "sk": {"S": LOCK}}, ConditionExpression="#tok = :k",
                                ExpressionAttributeNames={"#tok": "token"}, ExpressionAttributeValues={":k": {"S": token}})
        except self.db.exceptions.ConditionalCheckFailedException:
            pass  # broken by someone else meanwhile: nothing of ours to remove

    def break_lock(self, task_running: Callable[[str], bool]) -> str:
        """Remove a lock whose migration task is not running; say whose it was."""
        held = self.lock_holder()
        if held is None:
            return "no lock was held"
        if held["task_arn"] and task_running(held["task_arn"]):
            raise LedgerError(f"the lock of {self.prefix} is held by {held['holder']} and its migration task "
                              f"{held['task_arn'].rsplit('/', 1)[-1]} is still running; stop it first or wait")
        self.db.delete_item(TableName=self.table, Key={"pk": {"S": self.prefix}, "sk": {"S": LOCK}})
        return f"removed the lock held by {held['holder']} since {held['since']}"

    @contextmanager
    def locked(self, holder: str, lease_seconds: float) -> Iterator[str]:
        token = self.acquire(holder, lease_seconds)
        try:
            yield token
        finally:
            self.release(token)
