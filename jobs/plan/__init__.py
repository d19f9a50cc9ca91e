"""The typed plan of an experiment (``steps``) and its renderers: local child processes (``runner``), containers
(``containers``) and the Step Functions input (``pipeline_input``); the run lock and child-process handling."""
