"""Record transports (Redis Streams, PostgreSQL) against real servers on loopback, started here."""
