"""Scale-out: pixlearn predict and pixlearn process on Ray Data (``--engine ray``)."""
