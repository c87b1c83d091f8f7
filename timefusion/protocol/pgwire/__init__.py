"""PostgreSQL v3 wire protocol server: messages, connection state, Arrow to DataRow encoding."""
