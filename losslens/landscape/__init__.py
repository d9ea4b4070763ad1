"""Loss landscapes: directions, batched grid evaluation, and the ``landscape`` metric."""
