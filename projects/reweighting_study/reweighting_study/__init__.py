"""reweighting_study: the study of mmreweight's methods on the embedded benchmark.

Grid planning (:mod:`.plan`), running (:mod:`.execute`), per-run results (:mod:`.results`),
compact run records (:mod:`.archive`, :mod:`.records`) and the report (:mod:`.report`). Used by
the project's tools; import the submodules explicitly (nothing is registered here)."""
