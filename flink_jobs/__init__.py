"""Flink jobs and the pieces they need (the Java Redis Streams source and its Python wrapper)."""
