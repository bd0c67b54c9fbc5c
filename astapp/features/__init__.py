"""What the model sees: the log-mel filterbank (torch and numpy), its cache, augmentation, noise, previews.
"""
