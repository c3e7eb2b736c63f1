"""Monitoring runbooks for a SageMaker regression endpoint (Million Song Dataset year predictor)."""
