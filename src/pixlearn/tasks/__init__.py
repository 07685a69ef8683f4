"""One module per task: model, loss, pre/post-processing and metrics meet here."""
