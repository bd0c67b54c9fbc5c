"""Cross-validation: scores per fold, out-of-fold probabilities, embeddings and label issues.

`task.run_cv` is the entry; `clips` holds the dataset as clips and the shared fold helpers; `frozen`
(one backbone pass, a head per fold) and `trained` (a real training per fold) are the two strategies.
"""
