"""Unlabeled audio as a pool: windows embedded once, search by example, labels, label next, into a dataset."""
