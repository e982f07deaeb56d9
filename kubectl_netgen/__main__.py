"""``python -m kubectl_netgen``: the same program as the ``kubectl-netgen`` executable."""

from kubectl_netgen.cli import main

raise SystemExit(main())
