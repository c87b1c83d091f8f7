"""Table definitions loaded from the YAML files in `timefusion/schemas/`."""

from timefusion.schema.tables import Column, TableSchema, load_tables

__all__ = ["Column", "TableSchema", "load_tables"]
