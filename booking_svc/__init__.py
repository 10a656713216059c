"""The booking service: seat holds (Redis, Redlock), reservations (PostgreSQL), payments (Stripe), expiry."""
