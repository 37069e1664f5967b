"""`python -m mlsdm.server` is the same as the `mlsdm-grpc` console script."""

from mlsdm.server.cli import main

raise SystemExit(main())
