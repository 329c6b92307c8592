"""The dashboard: the page, its numbers (/api/stats), the recent frames (/api/recent) and its static files."""
