"""What a model predicts, kept so that two modes' predictions can be compared (the pair view)."""
