"""`python -m mlsdm.server` is the same as the `mlsdm-grpc` console script."""

from .cli import main

raise SystemExit(main())
