"""Reports over the lake: volumes, funnels, journey analytics."""
