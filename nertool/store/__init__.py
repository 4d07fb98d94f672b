"""Model bundles, the model and run directories, exported files, name resolution, model cards."""
