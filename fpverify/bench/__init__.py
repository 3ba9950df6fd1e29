"""Matcher benchmarks: FVC accuracy (`fpverify bench accuracy`) and speed (`fpverify bench speed`)."""
