"""Turn what a user uploads (zip, folder, manifest, saved or Hub dataset) into a labelled file list.

`zipsafe` extracts untrusted zips, `sources` resolves what the user named to a dataset folder, and
`layout` discovers the clips and their labels in it.
"""

from astapp.data.ingest.layout import (
    MANIFEST_EXTENSIONS,
    NOISE_FOLDERS,
    VALIDATION_NAMES,
    Item,
    Listing,
    Skipped,
    is_junk,
    is_noise_folder,
    nfc,
    rel_path,
    scan,
    walk,
)
from astapp.data.ingest.sources import resolve, resolve_source
from astapp.data.ingest.zipsafe import extract_zip

__all__ = ["MANIFEST_EXTENSIONS", "NOISE_FOLDERS", "VALIDATION_NAMES", "Item", "Listing", "Skipped", "extract_zip", "is_junk", "is_noise_folder",
           "nfc",
           "rel_path", "resolve", "resolve_source", "scan", "walk"]
