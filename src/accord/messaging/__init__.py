"""Email: templates, sending, tracking, bounces, campaigns and their KPIs."""
