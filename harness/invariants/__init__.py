"""The invariant registry: every declared invariant is backed by verifiers that actually run."""
