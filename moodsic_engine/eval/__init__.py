"""Evaluation: VEATIC per-frame accuracy, FindingEmo face evaluation, stability and speed.

Every report written here states the versions, config, weights (fingerprints) and data it
used (`provenance.py`), so a figure can be reproduced.
"""
