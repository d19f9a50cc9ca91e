class EtlError(Exception):
    """Stops the ETL. The message names the file, the field and what to do."""
