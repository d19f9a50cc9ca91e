"""Training: the ``train`` entry point (SageMaker container and ``cxr train``) and its parts."""
