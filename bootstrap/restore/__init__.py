"""`python -m bootstrap restore`: a point-in-time or snapshot restore into a new instance shaped
like the stack's (rds.py), verified through the access path (verify.py), run and reported by
run.py; the argparse glue is bootstrap/cli/restore.py. See docs/restore.md."""
