"""The pghome-fsbp policy pack (run with `pulumi preview --policy-pack policy`)."""
