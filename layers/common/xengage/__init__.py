"""xengage: the shared library of the Engagement API collector (shipped as the Lambda layer)."""
