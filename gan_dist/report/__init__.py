"""Reading run directories into documents: the report, the runs table. Torch-free, all of it."""
