"""PySpark jobs that build the lakehouse (bronze -> silver -> gold Delta tables)."""
