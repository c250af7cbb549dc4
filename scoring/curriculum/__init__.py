"""L1 curriculum: ordering strategies, online samplers and the Parquet shards a trainer reads."""
