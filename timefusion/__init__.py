"""TimeFusion: an observability database on Delta Lake, queried with DataFusion over PostgreSQL wire."""

__version__ = "0.1.0"
