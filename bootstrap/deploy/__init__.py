"""Deploy orchestration through the Automation API: the workspace and backends (`workspace`), the
phased `Deployer` (`deployer`) and the protocols of its collaborators (`seams`), the change preview
and question (`confirm`), the checks before any change (`preflight`), resources a release retired,
forgotten rather than deleted (`retired`), the image tag a deploy runs (`image_tag`) and `release`
(scan gate, up, steady state). Reaches the database only through `bootstrap.access` and rotates
only through `bootstrap.rotation`."""
