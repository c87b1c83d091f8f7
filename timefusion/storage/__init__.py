"""Storage layer: where tables live (local directory or S3) and the Delta tables themselves."""
