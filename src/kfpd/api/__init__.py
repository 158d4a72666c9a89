"""HTTP layer: FastAPI app, routes per resource, KFP JSON conversion, errors -> HTTP."""
