"""cxr-pipeline job code: ETL (PySpark), training and evaluation (Keras), and the CLI.

Kept import-free so that the EMR nodes, which only get ``jobs.etl``, can import the package.
"""
