"""The ETL's outputs as the training side reads them: the Parquet reader, the leak audit, the sources' fingerprint."""
