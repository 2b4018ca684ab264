"""The command line, and only it: argparse glue for every `python -m bootstrap` command (`main` builds
the tree), the real seams (boto3 clients, the Pulumi CLI, SSM) handed to the packages beside this one,
and the translation of their errors into one sentence and an exit status. Nothing else imports it."""
