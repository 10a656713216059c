"""The operators' service (AdminService): waiting room, sale, bookings and reconciliation on the day of an on-sale."""
