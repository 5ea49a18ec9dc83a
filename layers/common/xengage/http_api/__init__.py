"""The HTTP API (API Gateway REST -> ApiFunction): routers per area, models, error handling."""
