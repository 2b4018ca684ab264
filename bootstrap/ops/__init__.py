"""Operating the app day to day: the release's migration gate and ledger, rollback, status, logs."""
