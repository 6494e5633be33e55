"""The engine: a loss over its sources in chunks (:mod:`.sources`), merged in row order (:mod:`.run`), with
per-element values into a sink (:mod:`.sinks`) and views as accumulators (:mod:`.accumulators`)."""
