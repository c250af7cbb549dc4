"""L1 curation: near-duplicate removal, benchmark decontamination and the clean pool."""
