"""HTTP wiring: the FastAPI app, error mapping, and the routers of every context."""
