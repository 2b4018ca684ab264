"""The harness itself: it records what the engine would receive, options included, and merges
config the way the CLI does."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

from bootstrap.plan.mockgraph import run_program
from config.stack_file import project_name, stack_config


def test_records_inputs_options_secrets_parents_and_dependencies():
    def program() -> None:
        class Box(pulumi.ComponentResource):
            def __init__(self, name: str) -> None:
                super().__init__("test:box:Box", name)
                first = aws.s3.Bucket("first", bucket="first-bucket", opts=pulumi.ResourceOptions(parent=self))
                aws.s3.Bucket(
                    "second",
                    bucket=first.bucket.apply(lambda b: f"{b}-copy"),
                    tags={"Token": pulumi.Output.secret("s3cr3t")},
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        protect=True,
                        ignore_changes=["tags"],
                        additional_secret_outputs=["bucketDomainName"],
                        depends_on=[first],
                        delete_before_replace=True,
                        retain_on_delete=True,
                    ),
                )
                self.register_outputs({})

        Box("box")
        pulumi.export("plain", "value")
        pulumi.export("hidden", pulumi.Output.secret("shh"))

    g = run_program(program, stack="t", config={"aws:region": "us-east-2"})
    box = g.one("test:box:Box")
    first, second = g.one("aws:s3/bucket:Bucket", "first"), g.one("aws:s3/bucket:Bucket", "second")
    assert not box.custom and first.custom
    assert first.parent == box.urn and second.parent == box.urn
    assert second.inputs["bucket"] == "first-bucket-copy"
    assert second.inputs["tags"] == {"Token": "s3cr3t"} and second.is_secret("tags.Token") and not second.is_secret("bucket")
    assert second.protect and not first.protect
    assert second.ignore_changes == ["tags"]
    assert second.additional_secret_outputs == ["bucketDomainName"]
    assert first.urn in second.dependencies
    assert second.delete_before_replace and second.retain_on_delete
    assert g.outputs == {"plain": "value", "hidden": "shh"} and g.secret_outputs == {"hidden"}
    assert first.state["arn"] == "arn:aws:s3:::first-bucket"


def test_unknown_data_sources_fail_loudly():
    def program() -> None:
        aws.ec2.get_ami(owners=["amazon"], most_recent=True)

    with pytest.raises(Exception, match="no mock for data source aws:ec2/getAmi:getAmi"):
        run_program(program, stack="t", config={"aws:region": "eu-west-1"})


def test_policy_documents_are_rendered_like_the_provider():
    def program() -> None:
        doc = aws.iam.get_policy_document(
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    actions=["s3:GetObject"],
                    resources=["arn:aws:s3:::b/*"],
                    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=["logs.amazonaws.com"])],
                    conditions=[aws.iam.GetPolicyDocumentStatementConditionArgs(test="Bool", variable="aws:SecureTransport", values=["true"])],
                )
            ]
        )
        pulumi.export("doc", doc.json)

    g = run_program(program, stack="t", config={})
    assert json.loads(g.outputs["doc"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::b/*",
                "Principal": {"Service": "logs.amazonaws.com"},
                "Condition": {"Bool": {"aws:SecureTransport": "true"}},
            }
        ],
    }


def test_stack_config_merges_defaults_stack_file_and_overrides_as_text(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\nruntime: python\nconfig:\n  count:\n    type: integer\n    default: 2\n  flag:\n    type: boolean\n    default: false\n"
        "  items:\n    type: array\n    default: []\n"
    )
    (tmp_path / "Pulumi.s.yaml").write_text("config:\n  demo:flag: true\n  aws:region: eu-north-1\n  demo:items: [a, b]\n")
    cfg = stack_config("s", {"count": 5}, project_dir=tmp_path)
    assert cfg == {"demo:count": "5", "demo:flag": "true", "demo:items": '["a", "b"]', "aws:region": "eu-north-1"}
    assert project_name(tmp_path) == "demo"


def test_a_run_ignores_output_tasks_an_earlier_run_left_on_its_closed_loop():
    """The SDK tracks output tasks process-wide (pulumi.runtime.settings.SETTINGS.outputs); a task
    left there by an earlier run (a program that raised) belongs to a closed loop, and the next run
    waited on it ("Event loop is closed", seen once in CI). run_program starts from none."""
    import asyncio

    from pulumi.runtime import settings as runtime_settings

    old = asyncio.new_event_loop()
    left = old.create_task(asyncio.sleep(0))
    old.run_until_complete(left)
    old.close()
    with runtime_settings.SETTINGS.lock:
        runtime_settings.SETTINGS.outputs.add(left)

    def program() -> None:
        pulumi.export("answer", pulumi.Output.from_input(42))

    assert run_program(program, stack="t", config={}).outputs == {"answer": 42}


def test_the_collector_is_back_on_the_whole_heap_after_a_run_even_a_failed_one():
    """Runs freeze the heap for speed (bootstrap/plan/mockgraph.py _frozen_heap); a test process runs
    hundreds of them, so each must unfreeze, or every earlier graph's garbage would stay for good.
    Mutation tried: dropping gc.unfreeze() fails this test."""
    import gc

    def program() -> None:
        assert gc.get_freeze_count() > 0  # the run itself is frozen
        raise ValueError("the program fails")

    with pytest.raises(ValueError, match="the program fails"):
        run_program(program, stack="dev", config={"aws:region": "eu-west-1"})
    assert gc.get_freeze_count() == 0


def test_a_run_leaves_no_event_loop_open_in_the_executor_threads() -> None:
    """The SDK's MockMonitor gives every executor thread an event loop and never closes it; each
    was later garbage-collected open ("unclosed event loop" in whichever test ran then). The run
    closes them. Mutation tried: dropping the close loop at the end of run_program fails this test."""
    import asyncio
    import gc

    import pulumi_aws as aws

    def program() -> None:
        aws.get_caller_identity()  # an invoke, on an executor thread
        for i in range(8):
            aws.s3.Bucket(f"b{i}")

    gc.collect()
    before = {id(o) for o in gc.get_objects() if isinstance(o, asyncio.BaseEventLoop)}
    run_program(program, stack="t", config={"aws:region": "eu-west-1"})
    gc.collect()
    left_open = [o for o in gc.get_objects() if isinstance(o, asyncio.BaseEventLoop) and id(o) not in before and not o.is_closed()]
    assert left_open == []
