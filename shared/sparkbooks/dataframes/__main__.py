"""``python -m sparkbooks.dataframes WORKLOAD --path cpu|gpu --params JSON``: one workload in this process
(the child's side of :func:`sparkbooks.dataframes.child.run_isolated`)."""

import sys

from .child import main

sys.exit(main())
