"""Product recommendations: the catalogue, models trained on the engine, serving tables."""
