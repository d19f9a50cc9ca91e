"""What two sides agree on: the /opt/ml contract, the stack's outputs, metric lines, tasks, the operating point,
and the typed results files (``results``)."""
