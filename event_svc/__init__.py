"""The event service: event details, the seat map and live seat availability (EventService)."""
