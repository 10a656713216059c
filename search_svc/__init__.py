"""The search service: finding events by keywords (with typos), dates, place, performer and category."""
