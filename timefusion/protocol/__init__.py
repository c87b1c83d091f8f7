"""Protocol layer: the ways clients reach the database (PostgreSQL wire; later Flight and OTLP)."""
