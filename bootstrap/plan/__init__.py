"""The offline plan: `__main__.py` run in-process under Pulumi mocks (`mockgraph`, answered from the
tables in `mockanswers`, recorded as a `graph`), and the plan rendered and checked against the security controls (`report`).
No Pulumi CLI, no cloud."""
