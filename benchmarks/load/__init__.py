"""Mixed realistic load from locust: ``python -m benchmarks load`` (see ``runner``)."""
