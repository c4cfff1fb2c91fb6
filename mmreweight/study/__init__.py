"""mmreweight.study: the reweighting study (issue #5): grid planning, per-run results, report
and per-anchor diagnostics. Used by ``tools/study.py``, ``tools/study_report.py`` and
``tools/diagnose.py``; import the submodules explicitly (nothing is registered here)."""
