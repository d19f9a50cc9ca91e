"""The PySpark ETL. Runs on EMR 5.32 (Spark 2.4, Python 3.7) as well as locally: Python 3.7 syntax,
no TensorFlow, no imports from the rest of ``jobs``."""
