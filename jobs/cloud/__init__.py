"""Commands that talk to AWS: upload, start, follow and fetch runs, preflight checks, cost estimates, weights staging."""
