"""``cxr predict``: a trained model applied to new X-ray files (PNG, JPEG, DICOM), locally or in AWS."""
