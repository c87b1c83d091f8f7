"""Write path: ingest entry point, write-ahead log, in-memory buffer and flusher."""
