"""From what a user uploads to labelled, decoded clips: ingest, decoding, the dataset, its report and folds.

`audio` decodes any common file to 16 kHz mono; `ingest/` turns zips, folders, manifests and Hub layouts
into labelled items; `dataset` decodes them once into Arrow and splits them; `report` is the validation
report; `folds` groups clips by source recording; `examples`, `recordings` and `synth` make datasets
(built-in example, microphone takes, generated signals).
"""
