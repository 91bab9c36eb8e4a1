"""Helpers the tests (and bench/) share: tiny datasets, rendered pictures, fault injection, subprocess workers.

Imported as ``tests.helpers.<module>`` from the repository root; nothing here is a test.
"""
