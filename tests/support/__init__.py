"""What the tests share: a real `em server` process, PostgreSQL/S3 services, 0.6.0b0-shaped
directories and loaders, HTTP helpers, seeders, and the job scripts that tests run in their own
processes. None of it is a test; pytest collects only the `test_*.py` modules around it."""
