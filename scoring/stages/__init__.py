"""L3 stages: read the data root, call the libraries, write tables, return a `StageSummary`."""
