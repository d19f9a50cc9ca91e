"""The ETL's defaults: the paper's selection and split, in one table.

``cxr etl``'s flags (``jobs.etl.settings``), the selection rules (``jobs.etl.sources.Rules``) and the
experiment schema's ``etl`` block (``jobs.experiment.schema.EtlConfig``) all take their defaults from
here, so an experiment that leaves a setting out gets what a bare ``cxr etl`` does on EMR.
"""

PAPER = {
    "image_size": 224,  # 224x224 RGB
    "view": "PA",  # posteroanterior images only
    "modality": "X-ray",  # Cohen's metadata also lists CT scans
    "covid_finding": "COVID-19",  # Cohen 'finding' substring
    "pneumonia_finding": "Pneumonia",  # NIH 'Finding Labels' entry
    "normal_finding": "No Finding",  # NIH 'Finding Labels' entry
    "min_images_per_class": 10,
    "test_fraction": 0.2,  # the paper's 80/20 split
    "validation_fraction": 0.1,  # carved from the training part, for early stopping and thresholds
    "seed": 20200627,
}
